"""Recorded runs: refresh their state (one scheduler call for all), logs, cancel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from . import executors
from .errors import HpctfError
from .executors import Observation
from .exits import slurm_time
from .registry import Registry, RunRecord
from .runpaths import log_file
from .states import UNFINISHED, JobState


def handle(record: RunRecord):
    """The submitit handle of a recorded run (a SlurmRun, a LocalRun, ...: its executor's),
    with one sub-job per task as submitit has for multi-task jobs: ``job.task(1).stdout()``."""
    return executors.for_record(record).handle(record)


def refresh(registry: Registry, records: Iterable[RunRecord]) -> list[RunRecord]:
    """Bring unfinished records up to date with one scheduler call per executor, and save
    them (plus what an executor notes once they are saved: Slurm's ``sinfo`` on the
    refresh where runs end NODE_FAIL, to name the dead nodes)."""
    records = list(records)
    live = [r for r in records if r.state in UNFINISHED]
    if not live:
        return records
    groups: dict[str, list[RunRecord]] = {}
    for record in live:
        groups.setdefault(record.target, []).append(record)
    places = {name: executors.get(name) for name in groups}
    jobs = {r.run_id: places[r.target].handle(r) for r in live}
    for name, group in groups.items():
        places[name].update(group)
    now = time.time()
    updates: list[tuple[int, dict[str, object]]] = []
    for record in live:
        seen = places[record.target].observe(record, jobs[record.run_id])
        if seen is None:
            continue
        changes = _changes(record, seen, jobs[record.run_id], now)
        updates.append((record.run_id, changes))
        for key, value in changes.items():
            setattr(record, key, value)
    registry.update_many(updates)
    for name, group in groups.items():
        places[name].settled(group)
    return records


def _changes(record: RunRecord, seen: Observation, job, now: float) -> dict[str, object]:
    state, info = seen.state, seen.info
    changes: dict[str, object] = {"state": state.value}
    if info.get("NodeList") and info["NodeList"] not in ("None assigned", "(null)"):
        changes["nodes"] = info["NodeList"]
    started = slurm_time(info.get("Start"))
    if started is None and state is not JobState.PENDING and record.started is None:
        started = now
    if started is not None:
        changes["started"] = started
    if seen.restarts is not None:
        changes["restarts"] = seen.restarts
    if state.finished:
        changes["exit_code"] = job.exit_code
        changes["ended"] = slurm_time(info.get("End")) or record.ended or now
    return changes


def log_path(record: RunRecord, task: int = 0, stream: str = "out") -> Path:
    return log_file(record.log_dir, record.job_id, task, stream)


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
    executors.for_record(record).cancel(record)
