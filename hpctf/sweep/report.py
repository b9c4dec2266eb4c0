"""A sweep's trials as rows: the study's parameters and values beside the scheduler's
view of each job array element, best first (``hpctf sweep status``, ``sweep.trials()``).

The study knows what each trial got and how it ended (told by its element); the
scheduler knows what has not ended yet (pending, running) and what ended without telling
(an element killed before its trap ran: cancelled, NODE_FAIL).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..exits import slurm_time
from ..states import JobState
from .config import SweepConfig
from .study import TRIALS_DIR

ORDER = ("COMPLETE", "RUNNING", "PRUNED", "PENDING", "FAILED")  # best-first table: these groups, in order


@dataclass
class TrialRow:
    """One trial: its element (``<array>_<index>``), state, parameters, the metric's
    value, how long it ran and the folder that keeps its outputs."""

    index: int
    job_id: str
    state: str  # COMPLETE, PRUNED, FAILED; else the element's scheduler state (PENDING, RUNNING, CANCELLED ...)
    params: dict[str, Any]
    value: float | None
    duration: float | None
    run_dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def group(self) -> int:
        """Where the row sorts: complete first, then running, pruned, pending, failed."""
        if self.state in ORDER:
            return ORDER.index(self.state)
        state = JobState.from_slurm(self.state)
        return ORDER.index("FAILED" if state.finished else "PENDING" if state is JobState.PENDING else "RUNNING")


def trial_rows(folder: Path, config: SweepConfig, array_id: str, elements: dict[int, dict[str, str]]) -> list[TrialRow]:
    """Every trial of the sweep in ``folder``, best first; ``elements``: the scheduler's
    fields of the array's elements by index (see ``Executor.elements``)."""
    folder = Path(folder)
    kept = {}
    for path in (folder / TRIALS_DIR).glob("*.json"):
        if path.stem.isdigit():
            kept[int(path.stem)] = json.loads(path.read_text())
    by_number = {t.number: t for t in config.study(folder).trials()} if kept else {}
    rows = []
    for index in range(config.trials or 0):
        fields = elements.get(index, {})
        answer = kept.get(index)
        trial = by_number.get(answer["number"]) if answer else None
        rows.append(
            TrialRow(
                index=index,
                job_id=f"{array_id}_{index}",
                state=_state(trial, fields),
                params=answer["params"] if answer else {},
                value=trial.value if trial is not None else None,
                duration=_duration(fields, trial),
                run_dir=str(folder / TRIALS_DIR / str(index)),
            )
        )
    sign = -1 if config.goal == "max" else 1
    return sorted(rows, key=lambda r: (r.group, sign * r.value if r.value is not None else 0.0, r.index))


def _state(trial, fields: dict[str, str]) -> str:
    slurm = JobState.from_slurm(fields.get("State")) if fields.get("State") else None
    told = trial.state.name if trial is not None else None
    if told in ("COMPLETE", "PRUNED"):
        return told
    if told == "FAIL":
        # Cancelled, timed out ...: the scheduler's word says more than "failed".
        return slurm.value if slurm is not None and slurm.finished and slurm is not JobState.COMPLETED else "FAILED"
    if slurm is None:
        return "PENDING"
    return slurm.value


def _duration(fields: dict[str, str], trial) -> float | None:
    start, end = slurm_time(fields.get("Start")), slurm_time(fields.get("End"))
    if start is not None:
        import time

        return (end or time.time()) - start
    if trial is not None and trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def best(rows: list[TrialRow]) -> TrialRow | None:
    """The best complete trial (rows as :func:`trial_rows` sorts them), or None yet."""
    return next((r for r in rows if r.state == "COMPLETE" and r.value is not None), None)


def counts(rows: list[TrialRow]) -> dict[str, int]:
    """How many trials are in each state: ``{"COMPLETE": 5, "RUNNING": 3, ...}``."""
    out: dict[str, int] = {}
    for row in rows:
        out[row.state] = out.get(row.state, 0) + 1
    return out
