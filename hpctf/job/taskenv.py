"""Who this task is, from what ``srun`` (or Open MPI's ``mpirun``) exports to it."""

from __future__ import annotations

from collections.abc import Mapping

# Set by requeue jobs' scripts: the signal that asks the tasks for a checkpoint (hpctf.job.checkpoint).
CHECKPOINT_SIGNAL_ENV = "HPCTF_CHECKPOINT_SIGNAL"
# ...and the folder where each task says it is ready for that signal (hpctf.job.supervise).
READY_DIR_ENV = "HPCTF_READY_DIR"


class RuntimeSetupError(RuntimeError):
    """The task's environment does not describe a layout hpctf can use."""


def first(env: Mapping[str, str], *names: str, default: str | None = None) -> str:
    """The first of ``names`` set (and not empty) in ``env``; else ``default``."""
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            return value
    if default is not None:
        return default
    raise RuntimeSetupError(f"none of {', '.join(names)} is set: is this running inside a Slurm job step?")


OUTSIDE_A_JOB = "nojob"  # the job id of a task started by hand, with no SLURM_JOB_ID


def job_id(env: Mapping[str, str], default: str = "0") -> str:
    """The id the job's files carry: a sweep element's ``<array>_<index>`` (HPCTF_JOB_ID,
    set by its script, as Slurm's %A_%a name its logs), else SLURM_JOB_ID."""
    return env.get("HPCTF_JOB_ID") or env.get("SLURM_JOB_ID", default)


def task_rank(env: Mapping[str, str]) -> int:
    # Under mpirun the application inherits the SLURM_PROCID of the orted step that
    # started it (the node's index, not the rank): Open MPI's own variables win.
    return int(first(env, "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", default="0"))


def task_local_rank(env: Mapping[str, str]) -> int:
    return int(first(env, "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", default="0"))


def task_world_size(env: Mapping[str, str]) -> int:
    return int(first(env, "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", default="1"))
