"""Recorded runs: refresh their state (one scheduler call for all), logs, cancel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import HpctfError
from .exits import slurm_time
from .registry import Registry, RunRecord
from .states import UNFINISHED, JobState


def handle(record: RunRecord):
    """The submitit handle of a recorded run (a SlurmRun, or a LocalRun), with one
    sub-job per task as submitit has for multi-task jobs: ``job.task(1).stdout()``."""
    tasks = range(record.task_count)
    if record.target == "local":
        from .localrun import LocalRun

        return LocalRun(folder=record.log_dir, job_id=record.job_id, tasks=tasks)
    from .tracking import SlurmRun

    return SlurmRun(folder=record.log_dir, job_id=record.job_id, tasks=tasks)


def refresh(registry: Registry, records: Iterable[RunRecord]) -> list[RunRecord]:
    """Bring unfinished records up to date with one scheduler call, and save them (plus
    one ``sinfo`` on the refresh where runs end NODE_FAIL, to name the dead nodes)."""
    records = list(records)
    live = [r for r in records if r.state in UNFINISHED]
    if not live:
        return records
    jobs = {r.run_id: handle(r) for r in live}
    if any(r.target != "local" for r in live):
        from .tracking import SlurmRun

        SlurmRun.watcher.update()  # every watched Slurm job, one sacct (or squeue) call
    now = time.time()
    updates: list[tuple[int, dict[str, object]]] = []
    for record in live:
        job = jobs[record.run_id]
        info = job.info if record.target != "local" else {"NodeList": "localhost"}
        state = job.state
        if record.target != "local" and not info:
            continue
        changes: dict[str, object] = {"state": state.value}
        if info.get("NodeList") and info["NodeList"] not in ("None assigned", "(null)"):
            changes["nodes"] = info["NodeList"]
        started = slurm_time(info.get("Start"))
        if started is None and state is not JobState.PENDING and record.started is None:
            started = now
        if started is not None:
            changes["started"] = started
        restarts = job.restarts if record.target != "local" else None
        if restarts is not None:
            changes["restarts"] = restarts
        if state.finished:
            changes["exit_code"] = job.exit_code
            changes["ended"] = slurm_time(info.get("End")) or record.ended or now
        updates.append((record.run_id, changes))
        for key, value in changes.items():
            setattr(record, key, value)
    registry.update_many(updates)
    _record_node_failures([r for r in live if r.state == JobState.NODE_FAIL.value and r.target != "local"])
    return records


def _record_node_failures(records: list[RunRecord]) -> None:
    """Note which nodes Slurm declared dead, for runs that just ended NODE_FAIL: one
    ``sinfo`` for all of them, now, while the nodes' state and reason still say it."""
    if not records:
        return
    from .exits import record_node_failure
    from .runtime import RuntimeSetupError, expand_nodelist
    from .tracking import dead_nodes

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


def log_path(record: RunRecord, task: int = 0, stream: str = "out") -> Path:
    return Path(record.log_dir) / f"{record.job_id}_{task}_log.{stream}"


def read_log(record: RunRecord, task: int = 0, stream: str = "out") -> str:
    path = log_path(record, task, stream)
    if not path.exists():
        state = record.state
        hint = "the job has not started yet" if state == "PENDING" else f"the job is {state}"
        raise HpctfError(f"no log for task {task} of job {record.job_id} at {path} ({hint})")
    return path.read_text(errors="replace")


def follow(path: Path, finished: Callable[[], bool], poll_s: float = 0.5) -> Iterator[str]:
    """Yield what is appended to ``path`` until ``finished()`` and nothing more is left."""
    offset = 0
    while True:
        done = finished()  # asked before reading, so the last lines are never missed
        if path.exists():
            with open(path, errors="replace") as f:
                f.seek(offset)
                chunk = f.read()
                offset = f.tell()
            if chunk:
                yield chunk
        if done:
            return
        time.sleep(poll_s)


def cancel(record: RunRecord) -> None:
    if record.target == "local":
        handle(record).cancel()
        return
    try:
        done = subprocess.run(["scancel", record.job_id], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise HpctfError("scancel is not on PATH: run hpctf on a Slurm login node") from None
    if done.returncode != 0:
        raise HpctfError(f"scancel {record.job_id} failed: {done.stderr.strip()}")
