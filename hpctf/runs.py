"""Recorded runs, the run history: refresh their state (one scheduler call for all),
wait for them to end, follow and read their logs, the rows ``hpctf status``/``ls`` show,
cancel. The CLI parses and prints; what it prints comes from here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import executors
from .errors import HpctfError
from .executors import Observation
from .exits import failed_nodes, first_failed_task, reported_exit_code, requeues, slurm_time
from .registry import Registry, RunRecord
from .runpaths import RunPaths, log_file
from .states import UNFINISHED, JobState
from .table import duration, when


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
    places = {name: executors.get(name) for name in {r.target for r in live}}
    # Another cluster's runs (one home on several clusters) keep what was last seen: asked
    # here, their ids would name this cluster's jobs.
    live = [r for r in live if places[r.target].reachable(r)]
    groups: dict[str, list[RunRecord]] = {}
    for record in live:
        groups.setdefault(record.target, []).append(record)
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
        changes["exit_code"] = reported_exit_code(state.value, job.exit_code)
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


def follow(
    path: Path, finished: Callable[[], bool], poll_s: float = 0.5, tick: Callable[[], None] | None = None
) -> Iterator[str]:
    """Yield what is appended to ``path`` until ``finished()`` and nothing more is left;
    ``tick()`` is called every poll (``submit --wait`` shows the latest metrics there)."""
    offset = 0
    while True:
        done = finished()  # asked before reading, so the last lines are never missed
        if tick is not None:
            tick()
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


# ---------------------------------------------------------------------------------------
# Waiting for a run to end
# ---------------------------------------------------------------------------------------

PENDING_POLL_S = 5.0  # squeue asks slurmctld itself: not every second for every waiting shell
WAITING = (JobState.PENDING, JobState.CONFIGURING, JobState.UNKNOWN)

Queued = tuple[str, str | None, float | None]  # (state, the scheduler's reason, expected start)


class Watch:
    """One recorded run, watched until it ends: every look refreshes its record (one
    scheduler call) and saves it in ``registry`` (default: the run's own)."""

    def __init__(self, record: RunRecord, registry: Registry | None = None, poll_s: float = 1.0):
        self.record = record
        self.registry = registry if registry is not None else Registry(RunPaths.of(record).registry)
        self.poll_s = poll_s

    def state(self) -> JobState:
        refresh(self.registry, [self.record])
        return JobState.from_slurm(self.record.state)

    def finished(self) -> bool:
        return self.state().finished

    def queue(self, show: Callable[[Queued], None], pending_poll_s: float = PENDING_POLL_S) -> None:
        """Until the run leaves the queue, ``show`` gets (state, reason, expected start)
        every poll. While the queue says the job is pending, that is the one scheduler call
        per look (it gives the reason too), every ``pending_poll_s``; then the usual refresh."""
        polls_queue = executors.for_record(self.record).polls_queue
        queued, asked = None, 0.0
        while True:
            if polls_queue and time.monotonic() - asked >= pending_poll_s:
                queued, asked = self._pending(), time.monotonic()
            now = queued
            if now is None:
                state = self.state()
                if state not in WAITING:
                    return
                now = (state.value.lower(), None, None)
            show(now)
            time.sleep(self.poll_s)

    def _pending(self) -> Queued | None:
        """("pending", reason, expected start) from one queue call; None once the queue
        no longer says the job is pending (or does not answer)."""
        info = executors.for_record(self.record).pending(self.record)
        if info is None or info.state is not JobState.PENDING:
            return None
        return "pending", info.reason, info.expected_start

    def log(self, task: int = 0, stream: str = "out", tick: Callable[[], None] | None = None) -> Iterator[str]:
        """A task's log as it grows, until the run ends (``tick()`` every poll)."""
        return follow(log_path(self.record, task, stream), self.finished, poll_s=self.poll_s, tick=tick)

    def end(self, tick: Callable[[], None] | None = None) -> int:
        """Wait for the run to end (``tick()`` every poll); the exit code to exit with: the
        run's, or 1 where it has none (Slurm ended it: TIMEOUT, NODE_FAIL, cancelled while
        queued ...)."""
        while not self.finished():
            if tick is not None:
                tick()
            time.sleep(self.poll_s)
        code = self.record.exit_code if self.record.exit_code is not None else 1
        if code == 0 and self.record.state != JobState.COMPLETED.value:
            return 1  # a record written before exit codes of 0 were kept for COMPLETED only
        return code


# ---------------------------------------------------------------------------------------
# What `hpctf status` and `hpctf ls` show
# ---------------------------------------------------------------------------------------

STATUS_FIELDS = (
    "job_id",
    "name",
    "state",
    "exit_code",
    "backend",
    "shape",
    "nodes",
    "target",
    "cluster",
    "command",
    "run_dir",
)
LIST_COLUMNS = ("JOB", "NAME", "BACKEND", "SHAPE", "STATE", "EXIT", "SUBMITTED", "DURATION")


def status_dict(record: RunRecord) -> dict[str, Any]:
    """The record, the nodes a NODE_FAIL run lost and rank 0's latest metrics
    (``{"step": 12, "values": {"loss": 0.21}}``) (``status --json``)."""
    from .metrics.latest import latest

    failure = node_failure(record)
    found = latest(record.run_dir)
    metrics = {"step": found[0], "values": found[1]} if found else None
    requeue = last_requeue(record)
    return {
        **record.to_dict(),
        "state_detail": state_detail(record),
        "requeued": requeue,
        "end_reason": end_reason(record),
        "failed_nodes": failure["nodes"] if failure else None,
        "metrics": metrics,
    }


def status_rows(record: RunRecord) -> list[tuple[str, object]]:
    """(field, value) rows of one run, with the failed task, lost nodes and restarts."""
    rows: list[tuple[str, object]] = [(key, getattr(record, key)) for key in STATUS_FIELDS]
    detail = state_detail(record)
    if detail:
        rows[STATUS_FIELDS.index("state")] = ("state", f"{record.state} ({detail})")
    failed = failed_task(record)
    if failed:
        hint = f"hpctf logs {record.job_id} --task {failed[0]} --err"
        rows.insert(4, ("failed task", f"task {failed[0]} exited with {failed[1]} ({hint})"))
    failure = node_failure(record)
    if failure:
        named = "; ".join(f"{node} ({reason})" if reason else node for node, reason in failure["nodes"])
        rows.insert(4, ("failed nodes", named or f"unknown: {failure['unknown']}"))
    restarts = restarts_text(record)
    if restarts:
        rows.insert(3, ("restarts", restarts))
    if record.sweep:
        rows.insert(3, ("sweep", f"{record.array_size} trials: hpctf sweep status {record.job_id}"))
    why = end_reason(record)
    if why:
        rows.insert(3, ("ended", why))
    rows += [("submitted", when(record.submitted)), ("duration", duration(record.duration))]
    from .metrics.latest import latest_text

    metrics = latest_text(record.run_dir)
    return rows + ([("metrics", metrics)] if metrics else [])


def list_columns(with_cluster: bool = False) -> tuple[str, ...]:
    """:data:`LIST_COLUMNS`, with CLUSTER after JOB where the history holds several clusters."""
    return (LIST_COLUMNS[0], "CLUSTER", *LIST_COLUMNS[1:]) if with_cluster else LIST_COLUMNS


def list_rows(records: Iterable[RunRecord], with_cluster: bool = False) -> list[tuple[object, ...]]:
    """One row a run, in the order of :func:`list_columns`."""
    return [
        (r.job_id, *([r.cluster] if with_cluster else []), r.name, r.backend, r.shape, r.state, r.exit_code)
        + (when(r.submitted), duration(r.duration))
        for r in records
    ]


def restarts_text(record: RunRecord) -> str | None:
    """For requeue jobs and jobs Slurm requeued: '1 (2 attempts; ...)'."""
    spec = json.loads(record.spec or "{}")
    restarts = record.restarts or 0
    if not restarts and not spec.get("requeue"):
        return None
    text = f"{restarts} ({restarts + 1} attempt{'s' if restarts else ''}"
    after = requeues(record.log_dir, record.job_id) if restarts else {}
    if after:
        text += "; " + ", ".join(requeue_text(after[n]).replace("; attempt", " before attempt") for n in sorted(after))
    if spec.get("requeue") and executors.for_record(record).can_requeue:
        from .requeue import DEFAULT_MAX_RESTARTS

        limit = spec.get("max_restarts")
        text += f"; requeues itself at most {DEFAULT_MAX_RESTARTS if limit is None else limit} time(s)"
    return text + ")"


def last_requeue(record: RunRecord) -> dict | None:
    """The recorded requeue after a node failure that started the run's latest attempt:
    ``{"attempt": 2, "after": "NODE_FAIL", "nodes": [[node, reason]], "unknown": ...}``."""
    if not record.restarts:
        return None
    return requeues(record.log_dir, record.job_id).get(record.restarts + 1)


def requeue_text(entry: dict) -> str:
    """'requeued after node node2 failed; attempt 2'."""
    nodes = [node for node, _ in entry["nodes"]]
    what = f"node {', '.join(nodes)} failed" if nodes else "a node failed"
    return f"requeued after {what}; attempt {entry['attempt']}"


def state_detail(record: RunRecord) -> str | None:
    """What goes beside an unfinished run's state: its requeue after a node failure."""
    if JobState.from_slurm(record.state).finished:
        return None
    entry = last_requeue(record)
    return requeue_text(entry) if entry else None


def end_reason(record: RunRecord) -> str | None:
    """Why Slurm ended a run that did not complete ('time limit 00:01:00 reached', 'node
    node2 failed' ...); None for runs that are not over, COMPLETED or FAILED (their exit
    code says it)."""
    state = record.state
    if state == "TIMEOUT":
        limit = _time_limit(record)
        return f"time limit {limit} reached" if limit else "its time limit was reached"
    if state == "NODE_FAIL":
        failure = node_failure(record)
        nodes = [node for node, _ in failure["nodes"]] if failure else []
        return f"node {', '.join(nodes)} failed" if nodes else "a node of the job failed"
    return _END_REASONS.get(state)


_END_REASONS = {
    "CANCELLED": "stopped by scancel or hpctf cancel",
    "PREEMPTED": "preempted by a job of higher priority",
    "OUT_OF_MEMORY": "out of memory: a task went over the job's memory limit",
    "BOOT_FAIL": "its nodes failed to boot",
    "DEADLINE": "its --deadline passed before it could end",
    "REVOKED": "revoked (it ran on another cluster of the federation)",
    "LOST": "neither Slurm nor an exit-status file knows how it ended",
}


def _time_limit(record: RunRecord) -> str | None:
    """The run's --time as Slurm writes it (00:01:00, 1-00:00:00); None when not given
    (the partition's default applied)."""
    from .slurmtime import time_limit_seconds

    value = json.loads(record.spec or "{}").get("time")
    seconds = time_limit_seconds(value) if isinstance(value, str) else None
    if seconds is None:
        return None
    days, rest = divmod(seconds, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def end_text(record: RunRecord) -> str:
    """'(exit code 3)', '(time limit 00:01:00 reached)', '(stopped by ...; exit code 143)'."""
    parts = [end_reason(record)] if end_reason(record) else []
    if record.exit_code is not None:
        parts.append(f"exit code {record.exit_code}")
    elif not parts:  # FAILED with Slurm's meaningless 0:0, or a code nobody recorded
        parts.append("no exit code")
    return f"({'; '.join(parts)})"


def node_failure(record: RunRecord) -> dict | None:
    return failed_nodes(record.log_dir, record.job_id) if record.state == "NODE_FAIL" else None


def failed_task(record: RunRecord):
    return first_failed_task(record.log_dir, record.job_id) if record.state not in ("PENDING", "RUNNING") else None
