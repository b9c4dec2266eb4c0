"""The Slurm executor: ``sbatch`` to start, the sacct/squeue watcher to follow,
``scancel`` to stop, ``squeue`` to say why a job waits.

The watcher and the handle (:class:`~hpctf.executors.slurm.watch.SlurmRun`) need submitit: they are
imported when a run is followed, never to render or submit.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import HpctfError
from ...schedcall import MISSING, TIMED_OUT, call
from .. import Executor, Observation

SBATCH_TIMEOUT_S = 60
SCANCEL_TIMEOUT_S = 60


def _answered(reply, name: str, timeout_s: int):
    """``reply``, where the command ran and answered in time; else the user's error."""
    if reply.failure == MISSING:
        raise HpctfError(f"{name} is not on PATH: run hpctf on a Slurm login node")
    if reply.failure == TIMED_OUT:
        raise HpctfError(f"{name} did not answer in {timeout_s}s (is slurmctld up?)")
    return reply


def sbatch(command: list[str], umask: int | None = None) -> str:
    """Run ``sbatch --parsable``; its job id (``1234`` or ``1234;cluster`` -> ``1234``).

    sbatch passes this environment on to the job (``--export=ALL``, its default): that is
    how secret_environment_variables reach the tasks. ``umask`` becomes the job's
    ``SLURM_UMASK``, with which slurmstepd creates the batch step's log files, before the
    script's own ``umask`` line runs (sbatch keeps a SLURM_UMASK it inherits, so it is set)."""
    import os

    env = None if umask is None else {**os.environ, "SLURM_UMASK": f"{umask:04o}"}
    reply = _answered(call(command, SBATCH_TIMEOUT_S, env), "sbatch", SBATCH_TIMEOUT_S)
    if not reply.ok:
        raise HpctfError(f"sbatch refused the job: {reply.stderr.strip() or reply.stdout.strip()}")
    job_id = reply.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise HpctfError(f"sbatch printed no job id: {reply.stdout!r}")
    return job_id


def scancel(job_id: str) -> None:
    reply = _answered(call(["scancel", job_id], SCANCEL_TIMEOUT_S), "scancel", SCANCEL_TIMEOUT_S)
    if not reply.ok:
        raise HpctfError(f"scancel {job_id} failed: {reply.stderr.strip()}")


def record_node_failures(records: list) -> None:
    """Note which nodes Slurm declared dead, for runs that just ended NODE_FAIL: one
    ``sinfo`` for all of them, now, while the nodes' state and reason still say it."""
    if not records:
        return
    from ...exits import record_node_failure
    from ...job.nodelist import expand_nodelist
    from ...job.taskenv import RuntimeSetupError
    from .watch import dead_nodes

    answer = dead_nodes(",".join(r.nodes for r in records if r.nodes))
    dead = dict(answer or [])
    for record in records:
        try:
            nodes = expand_nodelist(record.nodes or "")
        except RuntimeSetupError:
            nodes = []
        record_node_failure(
            record.log_dir, record.job_id, None if answer is None else [(n, dead[n]) for n in nodes if n in dead]
        )


class SlurmExecutor(Executor):
    name = "slurm"
    polls_queue = True
    can_requeue = True
    runs_arrays = True
    cancels_elements = True  # scancel 237_4

    def command(self, script: Path) -> list[str]:
        return ["sbatch", "--parsable", str(script)]

    def start(self, plan) -> str:
        from ...private import job_umask

        return sbatch(self.command(plan.script_path), umask=job_umask(plan.sharing))

    def handle(self, record):
        from .watch import SlurmRun

        if record.sweep:  # a job array: followed as one job, from its elements
            SlurmRun.watcher.arrays[record.job_id] = record.array_size
        return SlurmRun(folder=record.log_dir, job_id=record.job_id, tasks=range(record.task_count))

    def elements(self, record) -> dict:
        from .arrays import elements
        from .watch import SlurmRun

        self.handle(record)
        if record.job_id not in SlurmRun.watcher._info_dict:
            SlurmRun.watcher.update()  # a sweep that had ended before this process looked
        return elements(SlurmRun.watcher._info_dict, record.job_id)

    def update(self, records: list) -> None:
        from .watch import SlurmRun

        SlurmRun.watcher.update()  # every watched Slurm job, one sacct (or squeue) call

    def observe(self, record, job) -> Observation | None:
        info = job.info
        state = job.state
        if not info:
            return None  # the scheduler has not said anything about it yet
        return Observation(state, info, job.restarts)

    def settled(self, records: list) -> None:
        from ...states import JobState

        record_node_failures([r for r in records if r.state == JobState.NODE_FAIL.value])

    def cancel(self, record) -> None:
        scancel(record.job_id)

    def pending(self, record):
        from .watch import queue_info

        return (queue_info([record.job_id]) or {}).get(record.job_id)

    def check_target(self, target) -> list:
        from .check import check_slurm

        return check_slurm(target)
