"""The estimator: what the user asked for, typed and validated once, when it is built.

``hpctf.TensorFlow`` takes every parameter of the Azure ML SDK ``TensorFlow`` estimator
(same names, same defaults) plus what a Slurm user needs.  Construction either returns a
complete, consistent spec or raises :class:`~hpctf.errors.SpecError` listing every problem.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import Problem, SpecError

BACKENDS = (None, "mpi", "ps")
LAUNCHERS = ("srun", "mpirun")
CONTAINER_RUNTIMES = ("apptainer", "singularity", "pyxis")

# Flags hpctf writes itself; setting them through ``sbatch_options`` would contradict
# the spec, so the escape hatch refuses them and names the field to use instead.
MANAGED_SBATCH_FLAGS = {
    "job-name": "job_name",
    "J": "job_name",
    "nodes": "node_count",
    "N": "node_count",
    "ntasks": "process_count_per_node",
    "n": "process_count_per_node",
    "ntasks-per-node": "process_count_per_node",
    "cpus-per-task": "cpus_per_task",
    "c": "cpus_per_task",
    "gres": "gpus_per_node",
    "gpus": "gpus_per_node",
    "G": "gpus_per_node",
    "gpus-per-node": "gpus_per_node",
    "gpus-per-task": "gpus_per_node",
    "partition": "partition",
    "p": "partition",
    "account": "account",
    "A": "account",
    "qos": "qos",
    "q": "qos",
    "time": "time",
    "t": "time",
    "mem": "memory",
    "constraint": "constraint",
    "C": "constraint",
    "exclusive": "exclusive",
    "output": "(hpctf's run folder)",
    "o": "(hpctf's run folder)",
    "error": "(hpctf's run folder)",
    "e": "(hpctf's run folder)",
    "open-mode": "(hpctf's run folder)",
    "chdir": "source_directory",
    "D": "source_directory",
    "wrap": "entry_script",
    # These change what sbatch does or prints, which hpctf's tracking relies on.
    "array": "(one run per submit)",
    "a": "(one run per submit)",
    "wait": "(hpctf submit --wait)",
    "W": "(hpctf submit --wait)",
    "parsable": "(hpctf's submission)",
    "help": "(hpctf's submission)",
    "usage": "(hpctf's submission)",
    "version": "(hpctf's submission)",
    "test-only": "(hpctf submit --dry-run)",
    "export": "environment_variables",
    "mem-per-cpu": "memory",
    "mem-per-gpu": "memory",
    "ntasks-per-core": "process_count_per_node",
    "ntasks-per-socket": "process_count_per_node",
    "ntasks-per-gpu": "process_count_per_node",
}

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_NAME_LIST = re.compile(r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SBATCH_FLAG = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_MEMORY = re.compile(r"^[0-9]+[KMGTkmgt]?$")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.\-&|\[\]*:()!,]+$")
_MODULE = re.compile(r"^[A-Za-z0-9_.+\-/@:]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n]")
# sbatch --time forms: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S".
_TIME = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d{1,2})(?::(?P<dm>\d{1,2})(?::(?P<ds>\d{1,2}))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d{1,2})(?::(?P<c>\d{1,2}))?)?)$"
)
_RESERVED_ENV_PREFIXES = ("SLURM_", "HPCTF_", "OMPI_", "PMIX_")
_RESERVED_ENV = {"TF_CONFIG", "CUDA_VISIBLE_DEVICES"}
_SCALAR = (str, int, float)


@dataclass(frozen=True, kw_only=True)
class TensorFlow:
    """A TensorFlow training job for Slurm, as the Azure ML SDK estimator describes one.

    The seed's parameters come first, with its names and defaults; Slurm parameters follow.
    """

    # -- the Azure ML SDK estimator's parameters ------------------------------------------
    source_directory: str | os.PathLike
    entry_script: str
    script_params: Mapping[str, Any] = field(default_factory=dict)
    compute_target: str | None = None
    conda_packages: Sequence[str] = ()
    pip_packages: Sequence[str] = ()
    use_gpu: bool = False
    node_count: int = 1
    process_count_per_node: int = 1
    distributed_backend: str | None = None
    worker_count: int = 1
    parameter_server_count: int = 1

    # -- what a Slurm user needs ----------------------------------------------------------
    arguments: Sequence[str] = ()  # extra argv after script_params, passed as given
    job_name: str | None = None  # default: the entry script's stem
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None  # sbatch --time: "30", "1:00:00", "2-00:00:00"
    cpus_per_task: int | None = None
    memory: str | None = None  # sbatch --mem, per node: "16G"
    gpus_per_node: int | None = None  # default with use_gpu: one per GPU-using process
    gpu_type: str | None = None  # --gres=gpu:<type>:N
    constraint: str | None = None
    exclusive: bool = False
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    setup: Sequence[str] = ()  # shell lines run once before the launch (module load ...)
    sbatch_options: Mapping[str, Any] = field(default_factory=dict)  # escape hatch
    python: str | None = None  # interpreter for the job; default: the submitting one
    modules: Sequence[str] = ()  # environment modules to load: `module load ...`
    # Which Keras tf.keras is in the tasks (TF >= 2.16 defaults to Keras 3), see
    # hpctf.job.keras_policy: "auto" (tf-keras for mpi and ps where installed), "legacy", "3".
    keras: str = "auto"

    # -- containers ----------------------------------------------------------------------
    container_image: str | None = None  # every task runs inside this image
    container_runtime: str | None = None  # "apptainer" (default), "singularity" or "pyxis"
    container_mounts: Sequence[str] = ()  # extra binds "SRC[:DST[:ro]]"; the run folder always

    # -- 'mpi' ---------------------------------------------------------------------------
    launcher: str | None = None  # "srun" (default: srun --mpi=<pmi>) or "mpirun" (Open MPI)
    pmi: str | None = None  # srun --mpi flavour (default "pmix")

    # -- 'ps' ----------------------------------------------------------------------------
    chief: bool = False
    port_base: int | None = None  # None: a range of the job's own, from its job id

    # -- requeue: preemption and time limits ---------------------------------------------
    # Slurm sends SIGUSR1 signal_grace seconds before the time limit (--signal=B:USR1@N);
    # the tasks save a checkpoint and stop, and the job requeues itself (same job id) while
    # it has been restarted fewer than max_restarts times. See templates/base.sbatch.j2.
    requeue: bool = False
    max_restarts: int | None = None  # default DEFAULT_MAX_RESTARTS (3)
    signal_grace: int | None = None  # seconds; default DEFAULT_SIGNAL_GRACE_S (120)

    def __post_init__(self) -> None:
        _normalise(self)
        problems = _validate(self)
        if problems:
            raise SpecError(problems)

    # -- derived values (pure, no I/O) ----------------------------------------------------

    @property
    def backend(self) -> str:
        return self.distributed_backend or "single"

    @property
    def task_count(self) -> int:
        """Processes the job starts, over all nodes."""
        return count_tasks(vars(self))

    def tasks_on_node(self) -> list[int]:
        """Tasks per node as Slurm's block distribution places ``task_count`` tasks."""
        base, extra = divmod(self.task_count, self.node_count)
        return [base + (1 if i < extra else 0) for i in range(self.node_count)]

    @property
    def gpu_tasks_per_node(self) -> int:
        """The most GPU-using processes any one node runs (parameter servers use none)."""
        if self.distributed_backend != "ps":
            return self.process_count_per_node
        from .job.roles import cluster_roles

        roles = cluster_roles(self.parameter_server_count, self.worker_count, self.chief is True)
        most, task_id = 0, 0
        for count in self.tasks_on_node():
            most = max(most, sum(1 for r, _ in roles[task_id : task_id + count] if r != "ps"))
            task_id += count
        return most

    @property
    def gpus(self) -> int:
        """GPUs requested per node (``--gres=gpu:N``)."""
        if not self.use_gpu:
            return 0
        if self.gpus_per_node is not None:
            return self.gpus_per_node
        return max(1, self.gpu_tasks_per_node)

    @property
    def mpi_launcher(self) -> str:
        return self.launcher or "srun"

    @property
    def pmi_plugin(self) -> str:
        return self.pmi or "pmix"

    @property
    def container(self) -> str | None:
        """The container runtime the tasks start in, or None."""
        if self.container_image is None:
            return None
        return self.container_runtime or "apptainer"

    @property
    def name(self) -> str:
        return self.job_name or Path(self.entry_script).stem or "hpctf"

    @property
    def entry_path(self) -> Path:
        return Path(self.source_directory) / self.entry_script

    def command_arguments(self) -> list[str]:
        """The entry script's argv after its name: script_params, then arguments."""
        argv: list[str] = []
        for key, value in self.script_params.items():
            if value is None or value is False:
                continue
            argv.append(key)
            if value is True:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            argv.extend(_format_scalar(v) for v in values)
        argv.extend(self.arguments)
        return argv

    def with_changes(self, **changes: Any) -> TensorFlow:
        """A copy with some fields changed, validated again."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out


def count_tasks(fields: Mapping[str, Any]) -> int:
    """Processes a job with these estimator fields starts (a spec's, or its JSON record's)."""
    if fields.get("distributed_backend") == "ps":
        return fields["parameter_server_count"] + fields["worker_count"] + int(fields.get("chief") is True)
    return fields.get("node_count", 1) * fields.get("process_count_per_node", 1)


def _format_scalar(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)  # keep "1.0" a float for argparse type=float
    return str(value)


# ---------------------------------------------------------------------------------------
# Normalisation: the forms users pass (lists, PathLikes, "none") become one canonical form.
# ---------------------------------------------------------------------------------------


def _normalise(spec: TensorFlow) -> None:
    def put(name: str, value: Any) -> None:
        object.__setattr__(spec, name, value)

    if isinstance(spec.source_directory, (str, os.PathLike)) and str(spec.source_directory):
        put("source_directory", Path(spec.source_directory).expanduser().absolute())
    for name in ("conda_packages", "pip_packages", "arguments", "setup", "modules", "container_mounts"):
        value = getattr(spec, name)
        if isinstance(value, (list, tuple)):
            put(name, tuple(value))
    for name in ("script_params", "environment_variables", "sbatch_options"):
        value = getattr(spec, name)
        if value is None:
            put(name, {})
        elif isinstance(value, Mapping):
            put(name, dict(value))
    if isinstance(spec.distributed_backend, str):
        lowered = spec.distributed_backend.strip().lower()
        put("distributed_backend", None if lowered in ("none", "single", "") else lowered)
    if spec.keras == 3 and not isinstance(spec.keras, bool):  # keras=3 as a number
        put("keras", "3")
    # Asking for GPUs per node means using GPUs (hpctf render --gpus-per-node 4).
    if _is_int(spec.gpus_per_node) and spec.gpus_per_node > 0 and spec.use_gpu is False:
        put("use_gpu", True)


# ---------------------------------------------------------------------------------------
# Validation: every rule adds a Problem; all are reported together.
# ---------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checks:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, name: str, value: Any, allowed: str) -> None:
        self.problems.append(Problem(name, value, allowed))

    def count(self, name: str, value: Any, minimum: int = 1, optional: bool = False) -> bool:
        if optional and value is None:
            return True
        if not _is_int(value) or value < minimum:
            self.add(name, value, f"must be an integer >= {minimum}")
            return False
        return True

    def boolean(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(name, value, "must be True or False")

    def text(self, name: str, value: Any, optional: bool = True, one_line: bool = True) -> bool:
        """A free-form string that will be quoted: no control characters, no line breaks."""
        if value is None and optional:
            return True
        if not isinstance(value, str) or not value:
            self.add(name, value, "must be a non-empty string")
            return False
        if _CONTROL.search(value) or (one_line and _LINE_BREAK.search(value)):
            self.add(name, value, "must not contain control characters or line breaks")
            return False
        return True

    def pattern(self, name: str, value: Any, regex: re.Pattern, allowed: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not regex.match(value):
            self.add(name, value, allowed)

    def strings(self, name: str, value: Any) -> bool:
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            self.add(name, value, "must be a list of strings")
            return False
        return True

    def mapping(self, name: str, value: Any) -> bool:
        if not isinstance(value, dict):
            self.add(name, value, "must be a dict")
            return False
        return True


def _validate(spec: TensorFlow) -> list[Problem]:
    c = _Checks()
    _check_code(c, spec)
    _check_shape(c, spec)
    _check_slurm(c, spec)
    _check_environment(c, spec)
    _check_container(c, spec)
    _check_requeue(c, spec)
    _check_encoding(c, spec)
    return c.problems


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _undecodable(value: Any) -> Any:
    """The first string in ``value`` that UTF-8 cannot encode (bytes a command line could not
    decode arrive as lone surrogates), or None: a script holding one could not be written."""
    if isinstance(value, (str, os.PathLike)):
        return value if _SURROGATE.search(str(value)) else None
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _undecodable(item)
            if found is not None:
                return found
    return None


def _check_encoding(c: _Checks, spec: TensorFlow) -> None:
    for f in fields(spec):
        bad = _undecodable(getattr(spec, f.name))
        if bad is not None:
            c.add(
                f.name,
                str(bad),
                "must be UTF-8 text: \\udcXX marks a byte that is not UTF-8 (from a file name or the command line)",
            )


def _check_code(c: _Checks, spec: TensorFlow) -> None:
    source = spec.source_directory
    if not isinstance(source, Path):
        c.add("source_directory", source, "must be the path of a folder")
        source = None
    elif _CONTROL.search(str(source)) or _LINE_BREAK.search(str(source)):
        c.add("source_directory", str(source), "must not contain control characters or line breaks")
        source = None
    elif not source.is_dir():
        c.add("source_directory", str(source), "must be an existing folder")
        source = None

    entry = spec.entry_script
    if not isinstance(entry, str) or not entry.strip() or _CONTROL.search(entry) or _LINE_BREAK.search(entry):
        c.add("entry_script", entry, "must be a file name relative to source_directory")
    elif Path(entry).is_absolute() or ".." in Path(entry).parts:
        c.add("entry_script", entry, "must be relative to source_directory, without '..'")
    elif source is not None:
        path = source / entry
        inside = path.resolve().is_relative_to(source.resolve())
        if not inside:
            c.add("entry_script", entry, "must stay inside source_directory (it is a link out of it)")
        elif not path.is_file():
            c.add("entry_script", entry, f"must be an existing file in {source}")

    if c.mapping("script_params", spec.script_params):
        for key, value in spec.script_params.items():
            if not isinstance(key, str) or not key or _CONTROL.search(key) or _LINE_BREAK.search(key):
                c.add("script_params", key, "keys must be non-empty one-line strings such as '--epochs'")
                continue
            if not _param_value_ok(value):
                c.add(
                    f"script_params[{key!r}]",
                    value,
                    "must be a str, int, float, bool, None, or a list of str/int/float "
                    "(no NUL characters, finite numbers)",
                )
    if c.strings("arguments", spec.arguments):
        for arg in spec.arguments:
            if "\x00" in arg:
                c.add("arguments", arg, "must not contain NUL characters")
    if spec.python is not None and c.text("python", spec.python) and spec.python.startswith("-"):
        # srun, mpirun, env and apptainer would read it as one of their own options.
        c.add(
            "python", spec.python, "must be an interpreter's path or command name, not an option (it starts with '-')"
        )


def _param_value_ok(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, _SCALAR):
            return False
        if isinstance(v, str) and "\x00" in v:
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
    return True


def _check_shape(c: _Checks, spec: TensorFlow) -> None:
    backend = spec.distributed_backend
    if backend not in BACKENDS:
        c.add("distributed_backend", backend, "must be None (one process), 'mpi' (Horovod) or 'ps' (parameter server)")
        return
    nodes_ok = c.count("node_count", spec.node_count)
    ppn_ok = c.count("process_count_per_node", spec.process_count_per_node)
    c.boolean("use_gpu", spec.use_gpu)
    c.boolean("chief", spec.chief)
    gpus_ok = c.count("gpus_per_node", spec.gpus_per_node, minimum=0, optional=True)
    if spec.launcher is not None and spec.launcher not in LAUNCHERS:
        c.add("launcher", spec.launcher, "must be 'srun' (srun --mpi=pmix) or 'mpirun' (Open MPI)")
    c.pattern(
        "pmi",
        spec.pmi,
        re.compile(r"^[a-z][a-z0-9_]*$"),
        "must be an srun --mpi plugin name such as 'pmix', 'pmix_v4' or 'pmi2'",
    )
    if spec.port_base is None:
        pass  # the job's own range, chosen at run time from its job id (hpctf.runtime)
    elif not (_is_int(spec.port_base) and 1024 <= spec.port_base <= 65000):
        c.add(
            "port_base", spec.port_base, "must be an integer port between 1024 and 65000 (or None: the job's own range)"
        )
    elif (
        backend == "ps"
        and _is_int(spec.worker_count)
        and _is_int(spec.parameter_server_count)
        and spec.port_base + spec.task_count > 65536
    ):
        c.add(
            "port_base",
            spec.port_base,
            f"must leave room for {spec.task_count} ports (task i listens on port_base + i <= 65535)",
        )

    if backend is None:
        if nodes_ok and ppn_ok and spec.node_count * spec.process_count_per_node > 1:
            c.add(
                "process_count_per_node" if spec.process_count_per_node > 1 else "node_count",
                spec.process_count_per_node if spec.process_count_per_node > 1 else spec.node_count,
                f"{spec.node_count * spec.process_count_per_node} processes need a distributed "
                "backend: set distributed_backend='mpi' (Horovod) or 'ps' (parameter server), "
                "or use node_count=1 and process_count_per_node=1",
            )
    if backend == "ps":
        workers_ok = c.count("worker_count", spec.worker_count)
        ps_ok = c.count("parameter_server_count", spec.parameter_server_count, minimum=0)
        if ppn_ok and spec.process_count_per_node != 1:
            c.add(
                "process_count_per_node",
                spec.process_count_per_node,
                "must be 1 with distributed_backend='ps': the tasks are "
                "parameter_server_count + worker_count (+ chief), spread over node_count nodes",
            )
        if workers_ok and ps_ok and nodes_ok and spec.task_count < spec.node_count:
            c.add(
                "node_count",
                spec.node_count,
                f"cannot place {spec.task_count} ps/worker/chief tasks on {spec.node_count} "
                f"nodes (every node needs a task): use node_count <= {spec.task_count} "
                "or add workers",
            )
    if spec.use_gpu is True and backend is not None and nodes_ok and ppn_ok and gpus_ok:
        if backend == "ps" and not (_is_int(spec.worker_count) and _is_int(spec.parameter_server_count)):
            return
        if backend == "ps" and spec.task_count > 65536:
            return  # refused above (a port per task); placing them would build huge lists
        if spec.task_count < spec.node_count:
            return
        needed = spec.gpu_tasks_per_node
        if spec.gpus_per_node is not None and spec.gpus_per_node < needed:
            c.add(
                "gpus_per_node",
                spec.gpus_per_node,
                f"must be >= {needed}: each GPU process gets a GPU of its own and up to {needed} run on one node",
            )
    if spec.use_gpu is True and spec.gpus_per_node == 0:
        c.add("gpus_per_node", 0, "must be >= 1 when use_gpu=True (or set use_gpu=False)")


def _check_slurm(c: _Checks, spec: TensorFlow) -> None:
    if c.text("job_name", spec.job_name) and spec.job_name is not None:
        if len(spec.job_name) > 200:
            c.add("job_name", spec.job_name, "must be at most 200 characters")
        _no_backslash(c, "job_name", spec.job_name)
    c.pattern(
        "partition",
        spec.partition,
        _NAME_LIST,
        "must be a partition name (letters, digits, '_', '-', '.'; several separated by ',')",
    )
    c.pattern("account", spec.account, _NAME, "must be an account name (letters, digits, '_', '-', '.')")
    c.pattern("qos", spec.qos, _NAME, "must be a QOS name (letters, digits, '_', '-', '.')")
    c.pattern("gpu_type", spec.gpu_type, _NAME, "must be a GPU type as in gres.conf, such as 'a100' or 'v100_32gb'")
    c.pattern("constraint", spec.constraint, _CONSTRAINT, "must be a Slurm constraint expression such as 'ib&v100'")
    for name in ("partition", "account", "qos", "constraint"):
        _slurm_length(c, name, getattr(spec, name))
    c.pattern("memory", spec.memory, _MEMORY, "must be a size such as '16G', '4000M' or '4000' (MB)")
    c.pattern("compute_target", spec.compute_target, _NAME, "must be a target name (letters, digits, '_', '-', '.')")
    if spec.time is not None and not valid_time(spec.time):
        c.add(
            "time",
            spec.time,
            "must be a Slurm time: 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM' or 'D-HH:MM:SS'",
        )
    c.count("cpus_per_task", spec.cpus_per_task, optional=True)
    c.boolean("exclusive", spec.exclusive)
    if spec.gpu_type is not None and spec.use_gpu is False:
        c.add("gpu_type", spec.gpu_type, "needs use_gpu=True or gpus_per_node >= 1")
    if c.mapping("sbatch_options", spec.sbatch_options):
        for flag, value in spec.sbatch_options.items():
            shown = f"sbatch_options[{flag!r}]"
            if not isinstance(flag, str) or not _SBATCH_FLAG.match(flag.lstrip("-")):
                c.add("sbatch_options", flag, "keys must be sbatch flag names such as 'mail-type' or 'reservation'")
            elif len(flag.lstrip("-")) == 1:
                c.add("sbatch_options", flag, "use the long flag name (e.g. 'nodelist', not 'w')")
            elif _managed_flag(flag.lstrip("-")):
                managed = _managed_flag(flag.lstrip("-"))
                instead = MANAGED_SBATCH_FLAGS[managed]
                if instead.startswith("("):  # no field of the estimator: hpctf decides it
                    c.add(shown, value, f"is set by hpctf (--{managed}: {instead[1:-1]}) and cannot be overridden")
                else:
                    c.add(shown, value, f"is set by hpctf (--{managed}): use the estimator's {instead} instead")
            elif value is None or value is True:
                continue  # a bare flag such as --requeue
            elif isinstance(value, bool) or not isinstance(value, (str, int)):
                c.add(shown, value, "must be a string, an integer, True or None (a bare flag)")
            elif isinstance(value, str) and c.text(shown, value):
                _no_backslash(c, shown, value)
                if any(f.startswith(flag.lstrip("-")) for f in _LIMITED_SBATCH_FLAGS):
                    _slurm_length(c, shown, value)


def _managed_flag(name: str) -> str | None:
    """The managed flag ``name`` means: sbatch accepts any unambiguous prefix of a long flag
    (``--ntasks-per-n`` is ``--ntasks-per-node``), so prefixes are refused too."""
    for managed in MANAGED_SBATCH_FLAGS:
        if len(managed) > 1 and (managed == name or managed.startswith(name)):
            return managed
    return None


# slurmctld refuses longer strings in these fields ("Pathname of a file, directory or other
# parameter too long"): the job name, partition, account, QOS, features and these flags.
SLURM_STRING_LIMIT = 1024
_LIMITED_SBATCH_FLAGS = (
    "comment",
    "licenses",
    "mail-user",
    "mcs-label",
    "network",
    "reservation",
    "wckey",
    "cluster-constraint",
)


def _slurm_length(c: _Checks, name: str, value: Any) -> None:
    if isinstance(value, str) and len(value) > SLURM_STRING_LIMIT:
        c.add(name, value, f"must be at most {SLURM_STRING_LIMIT} characters (slurmctld refuses longer ones)")


def _no_backslash(c: _Checks, name: str, value: str) -> None:
    # sbatch reads #SBATCH lines with its own parser, where a backslash escapes the next
    # character even inside quotes: a value could close its quotes and add a flag.
    if "\\" in value:
        c.add(name, value, "must not contain a backslash (sbatch reads it as an escape in #SBATCH lines)")


def valid_time(value: Any) -> bool:
    """An sbatch --time value: minutes, M:S, H:M:S, D-H[:M[:S]], or infinite/unlimited."""
    if not isinstance(value, str):
        return False
    if value.lower() in ("infinite", "unlimited"):
        return True
    m = _TIME.match(value)
    if not m:
        return False
    parts = m.groupdict()
    if parts["days"] is not None:
        return int(parts["dh"]) < 24 and all(int(parts[k] or 0) < 60 for k in ("dm", "ds"))
    # "M", "M:S" or "H:M:S": every field after the first is below 60.
    if parts["c"] is not None:
        return int(parts["b"]) < 60 and int(parts["c"]) < 60
    return parts["b"] is None or int(parts["b"]) < 60


def _check_environment(c: _Checks, spec: TensorFlow) -> None:
    for name in ("pip_packages", "conda_packages"):
        value = getattr(spec, name)
        if c.strings(name, value):
            for requirement in value:
                if not c.text(name, requirement, optional=False):
                    continue
                if requirement.startswith("-") or requirement.strip() != requirement:
                    c.add(
                        name,
                        requirement,
                        "each entry must be a package requirement such as 'numpy>=1.24', not an option",
                    )
    if c.mapping("environment_variables", spec.environment_variables):
        for key, value in spec.environment_variables.items():
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                c.add(
                    "environment_variables",
                    key,
                    "names must be shell variable names: letters, digits, '_', not starting with a digit",
                )
            elif key in _RESERVED_ENV or key.startswith(_RESERVED_ENV_PREFIXES):
                c.add(
                    f"environment_variables[{key!r}]",
                    value,
                    "is set by Slurm or hpctf per task and cannot be overridden",
                )
            elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
                c.add(f"environment_variables[{key!r}]", value, "must be a string or a number")
            elif isinstance(value, str) and "\x00" in value:
                c.add(f"environment_variables[{key!r}]", value, "must not contain NUL characters")
    _check_keras(c, spec)
    if c.strings("setup", spec.setup):
        for line in spec.setup:
            c.text("setup", line, optional=False)
    if c.strings("modules", spec.modules):
        for module in spec.modules:
            if not _MODULE.match(module) or module.startswith("-"):
                c.add(
                    "modules",
                    module,
                    (
                        "each entry must be a module name such as 'cuda/12.2' or 'openmpi/4.1.5' "
                        "(letters, digits, '_.+-/@:', not starting with '-')"
                    ),
                )


def _check_keras(c: _Checks, spec: TensorFlow) -> None:
    from .job.keras_policy import LEGACY_KERAS_ENV, MODES

    if spec.keras not in MODES:
        c.add(
            "keras",
            spec.keras,
            (
                "must be 'auto' (tf-keras for the mpi and ps backends where it is installed), "
                "'legacy' (tf-keras) or '3' (Keras 3)"
            ),
        )
        return
    env = spec.environment_variables if isinstance(spec.environment_variables, Mapping) else {}
    if spec.keras != "auto" and LEGACY_KERAS_ENV in env:
        c.add(
            f"environment_variables[{LEGACY_KERAS_ENV!r}]",
            env[LEGACY_KERAS_ENV],
            f"contradicts keras={spec.keras!r}, which sets {LEGACY_KERAS_ENV} itself: keep one of the two",
        )


def _check_container(c: _Checks, spec: TensorFlow) -> None:
    if spec.container_runtime is not None and spec.container_runtime not in CONTAINER_RUNTIMES:
        c.add(
            "container_runtime",
            spec.container_runtime,
            "must be 'apptainer', 'singularity' or 'pyxis' (srun --container-image)",
        )
    if c.text("container_image", spec.container_image) and spec.container_image is not None:
        _no_backslash(c, "container_image", spec.container_image)
        if spec.container_image.startswith("-"):
            # `apptainer exec ... IMAGE` would read it as one of its own options.
            c.add(
                "container_image",
                spec.container_image,
                (
                    "must be an image path or URI such as 'docker://tensorflow/tensorflow:2.18.0', "
                    "not an option (it starts with '-')"
                ),
            )
    if c.strings("container_mounts", spec.container_mounts):
        for mount in spec.container_mounts:
            # Both apptainer --bind and pyxis --container-mounts take comma-separated lists.
            if (
                not mount
                or _CONTROL.search(mount)
                or _LINE_BREAK.search(mount)
                or "," in mount
                or not mount.startswith("/")
            ):
                c.add(
                    "container_mounts",
                    mount,
                    "each entry must be 'SRC[:DST[:ro]]' with absolute paths, no commas or line breaks",
                )
    if spec.container_mounts and spec.container_image is None:
        c.add("container_mounts", _shown(spec.container_mounts), "need container_image")
    if spec.container_image is None:
        return
    if isinstance(spec.python, str) and "=" in spec.python:
        c.add(
            "python",
            spec.python,
            (
                "must not contain '=' with container_image: tasks start as `env PYTHONPATH=... PYTHON ...`, "
                "and env reads NAME=VALUE as a variable"
            ),
        )
    if spec.container == "pyxis" and spec.distributed_backend == "mpi" and spec.launcher == "mpirun":
        c.add(
            "launcher",
            spec.launcher,
            (
                "must be 'srun' with container_runtime='pyxis': "
                "Pyxis starts containers from srun's tasks, not from mpirun's"
            ),
        )
    for name in ("pip_packages", "conda_packages"):
        if getattr(spec, name):
            c.add(
                name,
                _shown(getattr(spec, name)),
                "cannot be combined with container_image: install the packages in the image",
            )


def _shown(value: Any) -> Any:
    """A tuple field as the list the user passed; any other value (of a wrong type) as is."""
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------
# Requeue: preemption and time limits
# ---------------------------------------------------------------------------------------

DEFAULT_MAX_RESTARTS = 3
DEFAULT_SIGNAL_GRACE_S = 120
# The job script keeps this much of the grace period for `scontrol requeue` itself: the
# tasks get signal_grace - REQUEUE_MARGIN_S seconds to save and exit.
REQUEUE_MARGIN_S = 15
MIN_SIGNAL_GRACE_S = 30
MAX_SIGNAL_GRACE_S = 65535  # sbatch --signal=...@N takes 0..65535 seconds
# sbatch flags the requeue section writes or contradicts (sbatch also takes prefixes).
_REQUEUE_FLAGS = ("requeue", "no-requeue", "signal")


def requeue_limits(spec: TensorFlow) -> tuple[int, int]:
    """(max_restarts, signal_grace) with their defaults filled in."""
    restarts = DEFAULT_MAX_RESTARTS if spec.max_restarts is None else spec.max_restarts
    grace = DEFAULT_SIGNAL_GRACE_S if spec.signal_grace is None else spec.signal_grace
    return restarts, grace


def time_limit_seconds(value: str) -> int | None:
    """A valid sbatch --time value in seconds; None for 'infinite'/'unlimited'."""
    m = _TIME.match(value)
    if m is None:
        return None
    p = {k: int(v) if v is not None else None for k, v in m.groupdict().items()}
    if p["days"] is not None:
        return ((p["days"] * 24 + p["dh"]) * 60 + (p["dm"] or 0)) * 60 + (p["ds"] or 0)
    if p["c"] is not None:  # H:M:S
        return (p["a"] * 60 + p["b"]) * 60 + p["c"]
    return p["a"] * 60 + (p["b"] or 0)  # M or M:S


def _check_requeue(c: _Checks, spec: TensorFlow) -> None:
    c.boolean("requeue", spec.requeue)
    restarts_ok = c.count("max_restarts", spec.max_restarts, minimum=0, optional=True)
    grace = spec.signal_grace
    grace_ok = grace is None or (_is_int(grace) and MIN_SIGNAL_GRACE_S <= grace <= MAX_SIGNAL_GRACE_S)
    if not grace_ok:
        c.add(
            "signal_grace",
            grace,
            f"must be whole seconds between {MIN_SIGNAL_GRACE_S} and {MAX_SIGNAL_GRACE_S}: the tasks "
            f"get signal_grace - {REQUEUE_MARGIN_S} s to save a checkpoint, the rest is for the requeue",
        )
    if spec.requeue is not True:
        for name in ("max_restarts", "signal_grace"):
            if getattr(spec, name) is not None:
                c.add(name, getattr(spec, name), "needs requeue=True")
        return
    if restarts_ok and spec.max_restarts is not None and spec.max_restarts > 1000:
        c.add("max_restarts", spec.max_restarts, "must be at most 1000")
    if grace_ok and isinstance(spec.time, str) and valid_time(spec.time):
        limit = time_limit_seconds(spec.time)
        _, lead = requeue_limits(spec)
        if limit is not None and lead >= limit:
            c.add(
                "signal_grace",
                lead,
                f"must be shorter than the time limit ({spec.time!r} = {limit} s): Slurm would "
                "signal the job as soon as it starts",
            )
    if isinstance(spec.sbatch_options, dict):
        for flag, value in spec.sbatch_options.items():
            name = flag.lstrip("-") if isinstance(flag, str) else ""
            if len(name) > 1 and any(f.startswith(name) for f in _REQUEUE_FLAGS):
                c.add(
                    f"sbatch_options[{flag!r}]",
                    value,
                    "is set by hpctf when requeue=True (--requeue, --signal=B:USR1@signal_grace): "
                    "use max_restarts and signal_grace instead",
                )
