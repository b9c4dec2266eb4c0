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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import jinja2

from . import __version__
from .errors import HpctfError
from .spec import TensorFlow

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
BUILTIN_TEMPLATES = Path(__file__).with_name("templates")
SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Open MPI's -x takes one name each and no wildcards (Horovod's docs export NCCL_* and
# HOROVOD_* one by one); the script collects the ones set at run time with these prefixes.
MPIRUN_EXPORT_PREFIXES = ("LD_LIBRARY_PATH", "NCCL_", "HOROVOD_", "TF_", "HPCTF_", "PYTHON")
# Horovod's recommended mpirun flags (docs/mpi.rst): no binding so TF's thread pools use
# every core, ranks filled slot by slot, and the ob1 PML without the obsolete openib BTL.
MPIRUN_FLAGS = ("-bind-to", "none", "-map-by", "slot", "-mca", "pml", "ob1", "-mca", "btl", "^openib")


@dataclass(frozen=True)
class JobPaths:
    """Where a job runs and where its logs go (absolute paths on the shared file system)."""

    workdir: Path
    log_dir: Path

    def __post_init__(self) -> None:
        for name in ("workdir", "log_dir"):
            if _UNPRINTABLE.search(str(getattr(self, name))):
                # A line break in a path would end its #SBATCH or shell line.
                raise HpctfError(f"{name}={str(getattr(self, name))!r}: must not contain control characters or line breaks")

    @classmethod
    def for_spec(cls, spec: TensorFlow, log_dir: str | Path | None = None) -> "JobPaths":
        workdir = Path(spec.source_directory)
        logs = Path(log_dir).expanduser().absolute() if log_dir is not None else workdir / "hpctf-logs"
        return cls(workdir=workdir, log_dir=logs)

    def log_pattern(self, stream: str, task: str = "%t") -> str:
        # submitit's names (<job>_<task>_log.out), so submitit's Job.stdout() finds them.
        # '%' is a pattern character in Slurm file names; '%%' is a literal '%'.
        folder = str(self.log_dir).replace("%", "%%")
        return f"{folder}/%j_{task}_log.{stream}"


def render_script(
    spec: TensorFlow,
    paths: JobPaths | None = None,
    *,
    template_dirs: Sequence[str | Path] = (),
) -> str:
    """The sbatch script for ``spec``: plain bash, readable, ready for ``sbatch``."""
    paths = paths or JobPaths.for_spec(spec)
    template = environment(tuple(str(d) for d in template_dirs)).get_template(f"{spec.backend}.sbatch.j2")
    return template.render(**build_context(spec, paths))


@functools.lru_cache(maxsize=8)
def environment(user_dirs: tuple[str, ...] = ()) -> jinja2.Environment:
    """One Jinja environment per template search path; user folders override by name."""
    builtin = BUILTIN_TEMPLATES if BUILTIN_TEMPLATES.is_dir() else SOURCE_TEMPLATES
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*user_dirs, str(builtin)]),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not ""
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shell_quote
    env.filters["shjoin"] = lambda words: " ".join(shell_quote(w) for w in words)
    env.filters["comment"] = comment_safe
    return env


def shell_quote(value: Any) -> str:
    """Quote one word for bash; every user value in a script goes through here."""
    return shlex.quote(str(value))


def comment_safe(value: Any) -> str:
    """Text for a ``#`` comment: a line break would end the comment and start a command."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


# ---------------------------------------------------------------------------------------
# The context: every decision about the script, as plain data.
# ---------------------------------------------------------------------------------------


def build_context(spec: TensorFlow, paths: JobPaths) -> dict[str, Any]:
    command = [spec.entry_script, *spec.command_arguments()]
    return {
        "version": __version__,
        "spec": spec,
        "summary": _summary(spec),
        "sbatch": sbatch_directives(spec, paths),
        "environment": [(k, str(v)) for k, v in spec.environment_variables.items()],
        "setup": list(spec.setup),
        "python": spec.python or sys.executable,
        "pip_packages": list(spec.pip_packages),
        "conda_packages": list(spec.conda_packages),
        "workdir": str(paths.workdir),
        "log_dir": str(paths.log_dir),
        "task_output": paths.log_pattern("out"),
        "task_error": paths.log_pattern("err"),
        "command": command,
        "runtime_args": runtime_arguments(spec),
        "launch": launch_words(spec),
        "mpirun_export_prefixes": MPIRUN_EXPORT_PREFIXES,
    }


def sbatch_directives(spec: TensorFlow, paths: JobPaths) -> list[str]:
    """The ``#SBATCH`` flags, in a fixed order, values quoted as sbatch reads them."""
    flags: list[tuple[str, Any]] = [("job-name", spec.name), ("nodes", spec.node_count)]
    if spec.distributed_backend == "ps":
        flags.append(("ntasks", spec.task_count))
    else:
        flags.append(("ntasks-per-node", spec.process_count_per_node))
    optional = [
        ("cpus-per-task", spec.cpus_per_task),
        ("mem", spec.memory),
        ("gres", gres(spec)),
        ("partition", spec.partition),
        ("account", spec.account),
        ("qos", spec.qos),
        ("time", spec.time),
        ("constraint", spec.constraint),
    ]
    flags += [(k, v) for k, v in optional if v is not None]
    if spec.exclusive:
        flags.append(("exclusive", None))
    flags += [
        ("output", paths.log_pattern("out", "0")),
        ("error", paths.log_pattern("err", "0")),
        # srun's per-task logs of task 0 go to the same files as the batch step's.
        ("open-mode", "append"),
    ]
    flags += [(k.lstrip("-"), None if v is True else v) for k, v in spec.sbatch_options.items()]
    return [f"--{k}" if v is None else f"--{k}={shell_quote(v)}" for k, v in flags]


def gres(spec: TensorFlow) -> str | None:
    """``gpu[:type]:N`` for ``--gres``: N GPUs on every node of the job."""
    if not spec.gpus:
        return None
    return ":".join(["gpu", *([spec.gpu_type] if spec.gpu_type else []), str(spec.gpus)])


def runtime_arguments(spec: TensorFlow) -> list[str]:
    """Options for ``python -m hpctf.runtime`` in every task."""
    args: list[str] = []
    if spec.distributed_backend == "ps":
        args += ["--ps", str(spec.parameter_server_count), "--workers", str(spec.worker_count)]
        if spec.chief:
            args.append("--chief")
        args += ["--port-base", str(spec.port_base)]
    if spec.use_gpu and spec.distributed_backend is not None:
        args.append("--bind-gpu")  # one GPU per process; a single process keeps them all
    return args


def launch_words(spec: TensorFlow) -> list[str]:
    """The launcher in front of the per-task command (without the log flags)."""
    if spec.distributed_backend == "mpi" and spec.launcher == "mpirun":
        return ["mpirun", "-np", str(spec.task_count), *MPIRUN_FLAGS]
    words = ["srun", f"--ntasks={spec.task_count}", "--distribution=block", "--kill-on-bad-exit=1"]
    if spec.cpus_per_task:
        # Since Slurm 22.05 srun no longer inherits --cpus-per-task from the job.
        words.append(f"--cpus-per-task={spec.cpus_per_task}")
    if spec.distributed_backend == "mpi":
        words.insert(1, f"--mpi={spec.pmi}")
    return words


def _summary(spec: TensorFlow) -> dict[str, str]:
    if spec.distributed_backend == "mpi":
        how = f"Horovod over Open MPI, started by {'srun --mpi=' + spec.pmi if spec.launcher == 'srun' else 'mpirun'}"
        shape = f"{spec.node_count} node(s) x {spec.process_count_per_node} process(es) = {spec.task_count}"
    elif spec.distributed_backend == "ps":
        how = "TensorFlow parameter servers and workers, TF_CONFIG per task"
        parts = [f"{spec.parameter_server_count} ps", f"{spec.worker_count} worker(s)"] + (["1 chief"] if spec.chief else [])
        shape = f"{' + '.join(parts)} on {spec.node_count} node(s)"
    else:
        how = "one process"
        shape = "1 node x 1 process"
    gpus = f"{spec.gpus} per node" + (f" ({spec.gpu_type})" if spec.gpu_type else "") if spec.gpus else "none"
    return {"backend": spec.backend, "how": how, "shape": shape, "gpus": gpus}
