"""The estimator: what the user asked for, typed and validated once, when it is built.

``hpctf.TensorFlow`` takes every parameter of the Azure ML SDK ``TensorFlow`` estimator
(same names, same defaults) plus what a Slurm user needs.  Construction either returns a
complete, consistent spec or raises :class:`~hpctf.errors.SpecError` listing every problem
(the rules: :mod:`hpctf.validation`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import SpecError
from .requeue import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_SIGNAL_GRACE_S,
    MAX_SIGNAL_GRACE_S,
    MIN_SIGNAL_GRACE_S,
    REQUEUE_MARGIN_S,
    requeue_limits,
)
from .slurmtime import time_limit_seconds, valid_time
from .validation import validate
from .validation.checks import SLURM_STRING_LIMIT
from .validation.container import CONTAINER_RUNTIMES
from .validation.normalise import normalise
from .validation.sbatch_options import MANAGED_SBATCH_FLAGS
from .validation.shape import BACKENDS, LAUNCHERS

# Names other modules have imported from here since before the rules had modules of their own.
__all__ = [
    "BACKENDS",
    "CONTAINER_RUNTIMES",
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_SIGNAL_GRACE_S",
    "LAUNCHERS",
    "MANAGED_SBATCH_FLAGS",
    "MAX_SIGNAL_GRACE_S",
    "MIN_SIGNAL_GRACE_S",
    "REQUEUE_MARGIN_S",
    "SLURM_STRING_LIMIT",
    "TensorFlow",
    "count_tasks",
    "requeue_limits",
    "time_limit_seconds",
    "valid_time",
]


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
    # Names of variables whose values come from the submitting environment, passed on by
    # sbatch and the launchers: never written to the script, the run folder or the history.
    secret_environment_variables: Sequence[str] = ()
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
    # Parameter servers on nodes of their own (a heterogeneous job: #SBATCH hetjob): their
    # partition and node count, and what else they need there. node_count, partition,
    # gpus_per_node ... keep meaning the chief's and workers' part. None: as today.
    ps_partition: str | None = None
    ps_node_count: int | None = None  # default with ps_partition: 1
    ps_cpus_per_task: int | None = None
    ps_memory: str | None = None  # sbatch --mem of the parameter servers' nodes
    ps_account: str | None = None

    # -- requeue: preemption and time limits ---------------------------------------------
    # Slurm sends SIGUSR1 signal_grace seconds before the time limit (--signal=B:USR1@N);
    # the tasks save a checkpoint and stop, and the job requeues itself (same job id) while
    # it has been restarted fewer than max_restarts times. See templates/base.sbatch.j2.
    requeue: bool = False
    max_restarts: int | None = None  # default DEFAULT_MAX_RESTARTS (3)
    signal_grace: int | None = None  # seconds; default DEFAULT_SIGNAL_GRACE_S (120)

    def __post_init__(self) -> None:
        normalise(self)
        problems = validate(self)
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

    @property
    def heterogeneous(self) -> bool:
        """The parameter servers run on nodes of their own: a heterogeneous Slurm job whose
        component 0 is the parameter servers and component 1 the chief and workers."""
        return self.distributed_backend == "ps" and (self.ps_partition is not None or self.ps_node_count is not None)

    @property
    def ps_nodes(self) -> int:
        """Nodes of a heterogeneous job's parameter servers."""
        return self.ps_node_count or 1

    def tasks_on_node(self) -> list[int]:
        """Tasks per node as Slurm's block distribution places ``task_count`` tasks (of a
        heterogeneous job: the chief's and workers' over ``node_count`` nodes)."""
        tasks = self.task_count - (self.parameter_server_count if self.heterogeneous else 0)
        base, extra = divmod(tasks, self.node_count)
        return [base + (1 if i < extra else 0) for i in range(self.node_count)]

    def ps_on_node(self) -> list[int]:
        """A heterogeneous job's parameter servers per node of their own."""
        base, extra = divmod(self.parameter_server_count, self.ps_nodes)
        return [base + (1 if i < extra else 0) for i in range(self.ps_nodes)]

    @property
    def gpu_tasks_per_node(self) -> int:
        """The most GPU-using processes any one node runs (parameter servers use none)."""
        if self.distributed_backend != "ps":
            return self.process_count_per_node
        if self.heterogeneous:  # the parameter servers are elsewhere
            return max(self.tasks_on_node())
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
