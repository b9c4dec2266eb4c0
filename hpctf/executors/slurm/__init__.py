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


def scancel(job_id: str, clusters: list[str] | tuple[str, ...] = ()) -> None:
    """``clusters``: ``--clusters NAME`` for another cluster's job (multi-cluster sites)."""
    reply = _answered(call(["scancel", *clusters, job_id], SCANCEL_TIMEOUT_S), "scancel", SCANCEL_TIMEOUT_S)
    if not reply.ok:
        raise HpctfError(f"scancel {job_id} failed: {reply.stderr.strip()}")


def record_requeues(records: list, info: dict[str, dict[str, str]], clusters: list[str] | tuple[str, ...] = ()) -> None:
    """Note, once per attempt, that Slurm requeued a job after a node of it failed, and
    which nodes Slurm holds dead: one ``sinfo`` for all the jobs where it is new.
    ``info``: the watcher's of the records' cluster; ``clusters``: ``--clusters NAME``
    where that is another cluster."""
    from ...exits import record_requeue, requeues
    from ...job.nodelist import expand_nodelist
    from ...job.taskenv import RuntimeSetupError
    from .watch import dead_nodes

    new = []
    for record in records:
        seen = info.get(record.job_id, {})
        attempt = (record.restarts or 0) + 1
        if (
            seen.get("RequeuedAfter") == "NODE_FAIL"
            and attempt > 1
            and attempt not in requeues(record.log_dir, record.job_id)
        ):
            new.append((record, attempt, seen.get("RequeuedNodes", "")))
    if not new:
        return
    answer = dead_nodes(",".join(nodes for _, _, nodes in new if nodes), clusters)
    dead = dict(answer or [])
    for record, attempt, nodelist in new:
        try:
            nodes = expand_nodelist(nodelist)
        except RuntimeSetupError:
            nodes = []
        found = None if answer is None else [(n, dead[n]) for n in nodes if n in dead]
        record_requeue(record.log_dir, record.job_id, attempt, found)


def record_node_failures(records: list, clusters: list[str] | tuple[str, ...] = ()) -> None:
    """Note which nodes Slurm declared dead, for runs that just ended NODE_FAIL: one
    ``sinfo`` for all of them, now, while the nodes' state and reason still say it
    (``clusters``: ``--clusters NAME`` where they ran on another cluster)."""
    if not records:
        return
    from ...exits import record_node_failure
    from ...job.nodelist import expand_nodelist
    from ...job.taskenv import RuntimeSetupError
    from .watch import dead_nodes

    answer = dead_nodes(",".join(r.nodes for r in records if r.nodes), clusters)
    dead = dict(answer or [])
    for record in records:
        try:
            nodes = expand_nodelist(record.nodes or "")
        except RuntimeSetupError:
            nodes = []
        record_node_failure(
            record.log_dir, record.job_id, None if answer is None else [(n, dead[n]) for n in nodes if n in dead]
        )


def _other_cluster(record) -> str | None:
    """The cluster of ``record`` where it is not the one this login node talks to (its jobs
    are asked about with ``--clusters``); None for this one's."""
    from .cluster import flag

    return record.cluster if flag(getattr(record, "cluster", None)) else None


def _profile_clusters() -> set[str]:
    """The clusters site profiles name (``cluster = "beta"``): this login node reaches them
    with ``--clusters`` (Slurm's multi-cluster set-up)."""
    from ...targets import load_config

    try:
        return {t.cluster for t in load_config().targets.values() if t.cluster}
    except HpctfError:
        return set()


class SlurmExecutor(Executor):
    name = "slurm"
    polls_queue = True
    can_requeue = True
    runs_arrays = True
    cancels_elements = True  # scancel 237_4

    def command(self, script: Path, cluster: str | None = None) -> list[str]:
        return ["sbatch", "--parsable", *([f"--clusters={cluster}"] if cluster else []), str(script)]

    def start(self, plan) -> str:
        from ...private import job_umask

        return sbatch(self.command(plan.script_path, plan.cluster), umask=job_umask(plan.sharing))

    def handle(self, record):
        from .watch import SlurmRun, watcher_for

        cluster = _other_cluster(record)
        if record.sweep:  # a job array: followed as one job, from its elements
            watcher_for(cluster).arrays[record.job_id] = record.array_size
        return SlurmRun(folder=record.log_dir, job_id=record.job_id, tasks=range(record.task_count), cluster=cluster)

    def elements(self, record) -> dict:
        from .arrays import elements
        from .watch import watcher_for

        self.handle(record)
        watcher = watcher_for(_other_cluster(record))
        if record.job_id not in watcher._info_dict:
            watcher.update()  # a sweep that had ended before this process looked
        return elements(watcher._info_dict, record.job_id)

    def update(self, records: list) -> None:
        from .watch import watcher_for

        for watcher in {id(w): w for w in map(watcher_for, map(_other_cluster, records))}.values():
            watcher.update()  # every watched job of one cluster, one sacct (or squeue) call

    def observe(self, record, job) -> Observation | None:
        info = job.info
        state = job.state
        if not info:
            return None  # the scheduler has not said anything about it yet
        return Observation(state, info, job.restarts)

    def settled(self, records: list) -> None:
        from ...states import JobState
        from .cluster import flag
        from .watch import watcher_for

        # Per cluster: another cluster's job 57 and its nodes are not this one's.
        by_cluster: dict[str | None, list] = {}
        for record in records:
            by_cluster.setdefault(_other_cluster(record), []).append(record)
        for cluster, group in by_cluster.items():
            clusters = flag(cluster)
            record_node_failures([r for r in group if r.state == JobState.NODE_FAIL.value], clusters)
            record_requeues([r for r in group if r.restarts], watcher_for(cluster)._info_dict, clusters)

    def cancel(self, record) -> None:
        from .cluster import flag

        scancel(record.job_id, flag(_other_cluster(record)))

    def pending(self, record):
        from .cluster import flag
        from .watch import queue_info

        return (queue_info([record.job_id], flag(_other_cluster(record))) or {}).get(record.job_id)

    # -- clusters (one home on several clusters) ---------------------------------------
    def cluster(self) -> str:
        from .cluster import UNKNOWN, here

        return here() or UNKNOWN

    def reachable(self, record) -> bool:
        from .cluster import UNKNOWN, here

        if record.cluster in (None, "", UNKNOWN):
            return True
        current = here()
        return current is None or record.cluster == current or record.cluster in _profile_clusters()

    def check_target(self, target) -> list:
        from .check import check_slurm

        return check_slurm(target)
