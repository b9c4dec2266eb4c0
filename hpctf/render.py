"""Spec -> sbatch script: a pure context builder and one Jinja environment.

Templates hold the layout of the script (``templates/*.sbatch.j2``); everything that
needs a decision is made here, in :func:`build_context`, so the templates only loop and
quote.  Every user value that reaches the shell goes through the ``shquote`` filter.
"""

from __future__ import annotations

import functools
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import __version__
from .errors import HpctfError
from .job.keras_policy import runtime_mode
from .job.ports import JOB_PORT_RANGE, job_range_slots
from .spec import TensorFlow
from .targets import MODULE_INITS, Target, apply_target, get_target, gres_spec

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_LINE_BREAK_OR_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is quoted like a space
BUILTIN_TEMPLATES = Path(__file__).with_name("templates")
SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Open MPI's -x takes one name each and no wildcards (Horovod's docs export NCCL_* and
# HOROVOD_* one by one); the script collects the ones set at run time with these prefixes.
MPIRUN_EXPORT_PREFIXES = ("LD_LIBRARY_PATH", "NCCL_", "HOROVOD_", "TF_", "HPCTF_", "PYTHON")
# Where the hpctf package (and hostlist, its one dependency at run time) is bound inside a
# container, so the image needs only Python: the bootstrap is pure standard library.
CONTAINER_RUNTIME_PATH = "/opt/hpctf-runtime"
# The cache of pip/conda environments when the target names none: under the home folder,
# which clusters share between the login and compute nodes; evaluated on the node.
DEFAULT_ENV_CACHE = '"${HPCTF_ENV_CACHE:-$HOME/.cache/hpctf/envs}"'

# Horovod's recommended mpirun flags (docs/mpi.rst): no binding so TF's thread pools use
# every core, ranks filled slot by slot, and the ob1 PML without the obsolete openib BTL.
MPIRUN_FLAGS = ("-bind-to", "none", "-map-by", "slot", "-mca", "pml", "ob1", "-mca", "btl", "^openib")


@dataclass(frozen=True)
class JobPaths:
    """Where a job runs, where its logs go, and the folder that keeps its outputs,
    TensorBoard events and metrics (absolute paths on the shared file system).

    ``run_dir`` is the run folder of ``hpctf submit``; a script rendered outside a run
    keeps them in its log folder."""

    workdir: Path
    log_dir: Path
    run_dir: Path | None = None
    array: bool = False  # a sweep's job array: files are named after the element (%A_%a)

    @property
    def kept(self) -> dict[str, Path]:
        """outputs, tensorboard and metrics folders (:data:`hpctf.runpaths.KEPT`)."""
        from .runpaths import kept_dirs

        return kept_dirs(self.run_dir or self.log_dir)

    def __post_init__(self) -> None:
        for name in ("workdir", "log_dir"):
            problem = _path_problem(name, str(getattr(self, name)))
            if problem:
                raise HpctfError(f"{name}={str(getattr(self, name))!r}: {problem}")

    @classmethod
    def for_spec(cls, spec: TensorFlow, log_dir: str | Path | None = None) -> JobPaths:
        workdir = Path(spec.source_directory)
        logs = Path(log_dir).expanduser().absolute() if log_dir is not None else workdir / "hpctf-logs"
        if log_dir is None and _path_problem("log_dir", str(logs)):
            # The folder the user named, not one derived from it (`hpctf submit` runs a
            # snapshot elsewhere, so it takes such folders).
            raise HpctfError(
                f"source_directory={str(workdir)!r}: {_path_problem('log_dir', str(logs))} when the job runs "
                "in place (it logs to SOURCE/hpctf-logs): use `hpctf submit`, which runs a snapshot, or --log-dir"
            )
        return cls(workdir=workdir, log_dir=logs)

    def log_pattern(self, stream: str, task: str = "%t") -> str:
        # submitit's names (<job>_<task>_log.out), so submitit's Job.stdout() finds them.
        # '%' is a pattern character in Slurm file names; '%%' is a literal '%'.
        folder = str(self.log_dir).replace("%", "%%")
        return f"{folder}/{'%A_%a' if self.array else '%j'}_{task}_log.{stream}"


def render_script(
    spec: TensorFlow,
    paths: JobPaths | None = None,
    *,
    template_dirs: Sequence[str | Path] = (),
    target: Target | None = None,
    sweep=None,
) -> str:
    """The sbatch script for ``spec``: plain bash, readable, ready for ``sbatch``.

    The compute target (``spec.compute_target`` unless given) fills in the site's
    defaults; its ``templates`` folder comes after ``template_dirs`` in the search path.
    """
    target = target or get_target(spec.compute_target)
    return render_for_target(apply_target(spec, target), target, paths, template_dirs=template_dirs, sweep=sweep)


def render_for_target(
    spec: TensorFlow,
    target: Target,
    paths: JobPaths | None = None,
    *,
    template_dirs: Sequence[str | Path] = (),
    sweep=None,
) -> str:
    """:func:`render_script` for a spec that ``target`` has already been applied to.
    ``sweep`` (a :class:`~hpctf.sweep.config.SweepConfig`) makes the script a job array
    whose elements are the sweep's trials; the sweep folder is ``paths.run_dir``."""
    paths = paths or JobPaths.for_spec(spec)
    dirs = [*template_dirs, *([target.templates] if target.templates else [])]
    template = environment(tuple(str(d) for d in dirs)).get_template(f"{spec.backend}.sbatch.j2")
    return template.render(**build_context(spec, paths, target, sweep))


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled templates, kept between commands: compiling the scripts' templates
    is a third of `hpctf render`'s time. Entries are checked against the template's source,
    so an edited or site template is compiled again; a cache that cannot be read or
    written is no cache (the command still renders)."""

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable, or damaged (pickle, marshal and EOF errors): compile
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def template_cache() -> jinja2.BytecodeCache | None:
    """Jinja's own per-user folder (``$TMPDIR/_jinja2-cache-UID``, mode 0700, checked to
    be the user's); None where it cannot be made, or with ``HPCTF_TEMPLATE_CACHE=0``."""
    import os

    if os.environ.get("HPCTF_TEMPLATE_CACHE") == "0":
        return None
    try:
        return _TemplateCache()
    except (OSError, RuntimeError):  # no temp folder, or one another user owns
        return None


@functools.lru_cache(maxsize=8)
def environment(user_dirs: tuple[str, ...] = ()) -> jinja2.Environment:
    """One Jinja environment per template search path.

    Site folders override built-in templates by name; a site template can extend the
    built-in one it replaces as ``builtin/NAME`` and change a single block::

        {% extends "builtin/base.sbatch.j2" %}
        {% block setup %}{{ super() }}source /site/profile.sh
        {% endblock %}
    """
    builtin = str(BUILTIN_TEMPLATES if BUILTIN_TEMPLATES.is_dir() else SOURCE_TEMPLATES)
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PrefixLoader({"builtin": jinja2.FileSystemLoader(builtin)}),
                jinja2.FileSystemLoader([*user_dirs, builtin]),
            ]
        ),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not ""
        bytecode_cache=template_cache(),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shell_quote
    env.filters["shjoin"] = lambda words: " ".join(shell_quote(w) for w in words)
    env.filters["comment"] = comment_safe
    return env


def _path_problem(name: str, path: str) -> str | None:
    """Why ``path`` cannot be written into the script, or None. Quoting handles the rest."""
    if _LINE_BREAK_OR_CONTROL.search(path):
        return "must not contain control characters or line breaks"  # they would end the line
    if name == "log_dir" and "\\" in path:
        # In #SBATCH --output=..., sbatch reads a backslash as an escape even inside quotes.
        return "must not contain a backslash (sbatch reads it as an escape in #SBATCH lines)"
    return None


def shell_quote(value: Any) -> str:
    """Quote one word for bash; every user value in a script goes through here."""
    text = str(value)
    if _LINE_BREAK_OR_CONTROL.search(text):
        # Line breaks and control characters become escapes ($'a\nb'): the script keeps
        # one command per line, and sbatch refuses a script with a CR LF anywhere in it.
        return "$'" + "".join(_ansi_c_char(ch) for ch in text) + "'"
    return shlex.quote(text)


def _ansi_c_char(ch: str) -> str:
    if ch in "\\'":
        return "\\" + ch
    return f"\\x{ord(ch):02x}" if _LINE_BREAK_OR_CONTROL.match(ch) else ch


def comment_safe(value: Any) -> str:
    """Text for a ``#`` comment: a line break would end the comment and start a command."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


# ---------------------------------------------------------------------------------------
# The context: every decision about the script, as plain data.
# ---------------------------------------------------------------------------------------


def build_context(spec: TensorFlow, paths: JobPaths, target: Target, sweep=None) -> dict[str, Any]:
    # An entry script named like an option ("-c...") would be read by Python as one.
    entry = f"./{spec.entry_script}" if spec.entry_script.startswith("-") else spec.entry_script
    command = [entry, *spec.command_arguments()]
    container = container_settings(spec, paths)
    if sweep is not None:
        from .sweep.script import sweep_context

        if paths.run_dir is None or not paths.array:
            raise HpctfError("a sweep's script needs its folder: JobPaths(run_dir=..., array=True)")
        sweep = sweep_context(sweep, paths.run_dir)
    return {
        "version": __version__,
        "spec": spec,
        "summary": _summary(spec),
        "sbatch": sbatch_directives(spec, paths, target, sweep),
        "sweep": sweep,
        # The id in the names of the files the script writes (exit status, restarts).
        "job_ref": "${HPCTF_JOB_ID}" if sweep else "${SLURM_JOB_ID}",
        "environment": [(k, str(v)) for k, v in spec.environment_variables.items()],
        "secrets": list(spec.secret_environment_variables),  # names only: the values stay in the environment
        "umask": script_umask(target),
        "module_paths": list(target.module_paths),
        "module_inits": MODULE_INITS,
        "modules": list(spec.modules),
        "site_setup": list(target.setup),
        "setup": list(spec.setup),
        "python": spec.python or ("python3" if container else sys.executable),
        "pip_packages": list(spec.pip_packages),
        "conda_packages": list(spec.conda_packages),
        "env_cache": shell_quote(target.env_cache) if target.env_cache else DEFAULT_ENV_CACHE,
        "env_args": environment_arguments(spec, target),
        "container": container,
        "workdir": str(paths.workdir),
        "log_dir": str(paths.log_dir),
        "kept": kept_variables(paths, sweep is not None),
        "task_output": paths.log_pattern("out"),
        "task_error": paths.log_pattern("err"),
        "command": command,
        "runtime_args": runtime_arguments(spec),
        "keras": runtime_mode(spec.keras, spec.backend),
        "ports": {"low": JOB_PORT_RANGE[0], "slots": job_range_slots(spec.task_count)},
        "launch": launch_words(spec),
        "mpirun_export_prefixes": MPIRUN_EXPORT_PREFIXES,
        "requeue": requeue_settings(spec),
    }


def kept_variables(paths: JobPaths, per_trial: bool = False) -> list[tuple[str, str]]:
    """(variable, folder as a shell word) of what the run keeps: HPCTF_OUTPUT_DIR,
    HPCTF_TENSORBOARD_DIR ...; a sweep's element keeps its own in its trial's folder."""
    from .runpaths import KEPT

    if per_trial:
        return [(KEPT[name], f'"$HPCTF_TRIAL_DIR"/{name}') for name in paths.kept]
    return [(KEPT[name], shell_quote(folder)) for name, folder in paths.kept.items()]


def script_umask(target: Target) -> str:
    """The job's umask: owner-only files, or group-readable ones for a target that shares
    its runs (``share_with_group``; :mod:`hpctf.private`)."""
    from .private import JOB_UMASK, Sharing

    return f"{Sharing.umask if target.share_with_group else JOB_UMASK:03o}"


def environment_arguments(spec: TensorFlow, target: Target) -> list[str]:
    """Options for ``python -m hpctf.envs ensure`` (after ``--cache``)."""
    args: list[str] = []
    if target.trust_group is not None:
        args += ["--trust-group", target.trust_group]
    if target.tensorflow is not None:
        args += ["--tensorflow", target.tensorflow]
    if spec.use_gpu:
        args.append("--gpu")
    for package in spec.conda_packages:
        args += ["--conda", package]
    for package in spec.pip_packages:
        args += ["--pip", package]
    return args


def gpu_request_form(target: Target) -> str:
    """How the script asks for GPUs: ``gres`` (``--gres=gpu:N``) or ``gpus-per-node``.

    ``--gres`` works with every Slurm release and both GPU-aware node selectors
    (select/cons_res and cons_tres), so it is the default ("auto"). ``--gpus-per-node``
    (Slurm >= 19.05) needs select/cons_tres; sites that count GPUs as TRES ask for it.
    """
    if target.gpu_request in ("auto", "gres"):
        return "gres"
    from .executors.slurm.version import require

    require((19, 5), "--gpus-per-node (gpu_request='gpus-per-node')")
    return "gpus-per-node"


def container_settings(spec: TensorFlow, paths: JobPaths) -> dict[str, Any] | None:
    """What the launch needs to start every task inside ``spec.container_image``."""
    if spec.container is None:
        return None
    import hostlist

    package = Path(__file__).resolve().parent
    binds: list[str] = []  # the folders the tasks use, none inside another
    folders = dict.fromkeys([paths.workdir, paths.log_dir, paths.run_dir or paths.log_dir])
    for folder in sorted(folders, key=lambda p: len(p.parts)):  # outer folders first; stable
        if not any(folder.is_relative_to(bound) for bound in binds):
            binds.append(str(folder))
    for path in binds:
        if ":" in path or "," in path:
            raise HpctfError(f"{path!r}: a container bind path cannot contain ':' or ','")
    binds = [f"{p}:{p}" for p in binds] + [
        f"{package}:{CONTAINER_RUNTIME_PATH}/hpctf:ro",
        f"{Path(hostlist.__file__).resolve()}:{CONTAINER_RUNTIME_PATH}/hostlist.py:ro",
        *spec.container_mounts,
    ]
    runtime = spec.container
    others = [r for r in ("apptainer", "singularity") if r != runtime]
    return {
        "runtime": runtime,
        "image": spec.container_image,
        "binds": ",".join(binds),
        "runtime_path": CONTAINER_RUNTIME_PATH,
        "find": [runtime, *others],  # the binaries to look for, preferred first
        # --nv binds the host's NVIDIA driver and devices; CUDA_VISIBLE_DEVICES passes in.
        "exec_flags": ["--nv"] if spec.use_gpu else [],
    }


def sbatch_directives(spec: TensorFlow, paths: JobPaths, target: Target, sweep: dict | None = None) -> list[str]:
    """The ``#SBATCH`` flags, in a fixed order, values quoted as sbatch reads them."""
    flags: list[tuple[str, Any]] = [("job-name", spec.name)]
    if sweep:
        flags.append(("array", sweep["array"]))  # one element a trial, at most K at once (%K)
    flags.append(("nodes", spec.node_count))
    if spec.distributed_backend == "ps":
        flags.append(("ntasks", sum(spec.tasks_on_node())))
        if spec.node_count > 1:
            # Without a per-node maximum Slurm packs the tasks onto the first nodes' free
            # CPUs (4 tasks on two 4-CPU nodes: 3 + 1). With --ntasks, --ntasks-per-node is
            # that maximum, and the tasks spread as spec.tasks_on_node() counts them, which
            # is what the GPU request per node is computed from.
            flags.append(("ntasks-per-node", max(spec.tasks_on_node())))
    else:
        flags.append(("ntasks-per-node", spec.process_count_per_node))
    optional = [
        ("cpus-per-task", spec.cpus_per_task),
        ("mem", spec.memory),
        *gpu_request(spec, target),
        ("partition", spec.partition),
        ("account", spec.account),
        ("qos", spec.qos),
        ("time", spec.time),
        ("constraint", spec.constraint),
    ]
    flags += [(k, v) for k, v in optional if v is not None]
    if spec.exclusive:
        flags.append(("exclusive", None))
    job_wide = [
        ("output", paths.log_pattern("out", "0")),
        ("error", paths.log_pattern("err", "0")),
        # srun's per-task logs of task 0 go to the same files as the batch step's.
        ("open-mode", "append"),
        *requeue_directives(spec),
        *[(k.lstrip("-"), None if v is True else v) for k, v in spec.sbatch_options.items()],
    ]
    if spec.heterogeneous:
        from .hetjob import HETJOB, het_directives

        name, rest = flags[: 2 if sweep else 1], flags[2 if sweep else 1 :]
        flags = het_directives(spec, [*name, *job_wide], rest)
        return [HETJOB if k == HETJOB else f"--{k}" if v is None else f"--{k}={shell_quote(v)}" for k, v in flags]
    flags += job_wide
    return [f"--{k}" if v is None else f"--{k}={shell_quote(v)}" for k, v in flags]


def gpu_request(spec: TensorFlow, target: Target) -> list[tuple[str, Any]]:
    """The GPU flag: ``--gres=gpu[:type]:N`` (the target's GRES name) or
    ``--gpus-per-node=[type:]N``, N per node. A CPU job asks for none, whatever the form."""
    if not spec.gpus:
        return []
    if gpu_request_form(target) == "gpus-per-node":
        return [("gpus-per-node", ":".join([*([spec.gpu_type] if spec.gpu_type else []), str(spec.gpus)]))]
    return [("gres", gres_spec(target.gres_name, spec.gpu_type, spec.gpus))]


def runtime_arguments(spec: TensorFlow) -> list[str]:
    """Options for ``python -m hpctf.runtime`` in every task."""
    args: list[str] = []
    if spec.distributed_backend == "ps":
        args += ["--ps", str(spec.parameter_server_count), "--workers", str(spec.worker_count)]
        if spec.chief:
            args.append("--chief")
        if spec.heterogeneous:
            args.append("--het")  # parameter servers are component 0's tasks
        if spec.port_base is not None:  # else the runtime picks the job's own range
            args += ["--port-base", str(spec.port_base)]
    if spec.use_gpu and spec.distributed_backend is not None:
        args.append("--bind-gpu")  # one GPU per process; a single process keeps them all
    keras = runtime_mode(spec.keras, spec.backend)  # see the script's "Keras" section
    if keras is not None:
        args += ["--keras", keras]
    return args


def launch_words(spec: TensorFlow) -> list[str]:
    """The launcher in front of the per-task command (without the log flags)."""
    if spec.distributed_backend == "mpi" and spec.mpi_launcher == "mpirun":
        return ["mpirun", "-np", str(spec.task_count), *MPIRUN_FLAGS]
    if spec.heterogeneous:  # one step over both components, each its allocation's tasks
        return ["srun", "--het-group=0,1", "--distribution=block", "--kill-on-bad-exit=1"]
    words = ["srun", f"--ntasks={spec.task_count}", "--distribution=block", "--kill-on-bad-exit=1"]
    if spec.cpus_per_task:
        # Since Slurm 22.05 srun no longer inherits --cpus-per-task from the job.
        words.append(f"--cpus-per-task={spec.cpus_per_task}")
    if spec.distributed_backend == "mpi":
        words.insert(1, f"--mpi={spec.pmi_plugin}")
    return words


# -- requeue: preemption and time limits --------------------------------------------------


def requeue_settings(spec: TensorFlow) -> dict[str, Any] | None:
    """What the requeue section of the script needs; None (no section) without requeue."""
    if not spec.requeue:
        return None
    from .requeue import REQUEUE_MARGIN_S, requeue_limits

    max_restarts, grace = requeue_limits(spec)
    return {
        "signal": "USR1",
        "max_restarts": max_restarts,
        "grace": grace,
        "task_grace": grace - REQUEUE_MARGIN_S,  # for the tasks; the rest is for the requeue
        "margin": REQUEUE_MARGIN_S,
    }


def requeue_directives(spec: TensorFlow) -> list[tuple[str, Any]]:
    """``--requeue`` and ``--signal=B:USR1@<grace>`` (none without requeue)."""
    settings = requeue_settings(spec)
    if settings is None:
        return []
    return [("requeue", None), ("signal", f"B:{settings['signal']}@{settings['grace']}")]


def _summary(spec: TensorFlow) -> dict[str, str]:
    if spec.distributed_backend == "mpi":
        how = (
            "Horovod over Open MPI, started by "
            f"{'srun --mpi=' + spec.pmi_plugin if spec.mpi_launcher == 'srun' else 'mpirun'}"
        )
        shape = f"{spec.node_count} node(s) x {spec.process_count_per_node} process(es) = {spec.task_count}"
    elif spec.distributed_backend == "ps":
        how = "TensorFlow parameter servers and workers, TF_CONFIG per task"
        parts = [f"{spec.parameter_server_count} ps", f"{spec.worker_count} worker(s)"] + (
            ["1 chief"] if spec.chief else []
        )
        shape = f"{' + '.join(parts)} on {spec.node_count} node(s)"
        if spec.heterogeneous:
            from .hetjob import het_shape

            shape = het_shape(spec)
    else:
        how = "one process"
        shape = "1 node x 1 process"
    gpus = f"{spec.gpus} per node" + (f" ({spec.gpu_type})" if spec.gpu_type else "") if spec.gpus else "none"
    return {"backend": spec.backend, "how": how, "shape": shape, "gpus": gpus}
