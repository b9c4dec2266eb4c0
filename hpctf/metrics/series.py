"""What a run logged, held by column: one :class:`Series` a metric (and rank), the
:class:`Row` the Python API hands out, and :class:`RunMetrics`, everything read from one
run folder.

Columns, not rows: a million points are three lists of numbers, not a million objects
(building them would take longer than reading the file). Rows are made when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import lt
from pathlib import Path


@dataclass(slots=True)
class Row:
    """One logged point: ``rank`` is the task's rank for ``hpctf.log_metric``'s files and
    None for TensorBoard's; ``time`` is epoch seconds (None where the file gave none)."""

    name: str
    step: int
    value: float
    rank: int | None
    time: float | None


@dataclass
class Series:
    """One metric of one rank (or of one TensorBoard folder), by step, each step once."""

    name: str
    rank: int | None
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)

    def settle(self) -> Series:
        """Put the points in step order, each step once: where a step repeats (a requeued
        attempt logs again from its checkpoint), the later line is the newer value."""
        steps = self.steps
        # The usual case, in order: one C pass (operator.lt: ~5 ms a million; int.__lt__ ~15).
        if all(map(lt, steps, steps[1:])):
            return self
        latest = dict(zip(steps, zip(self.values, self.times)))
        order = sorted(latest)
        self.steps = order
        self.values = [latest[s][0] for s in order]
        self.times = [latest[s][1] for s in order]
        return self

    def rows(self) -> list[Row]:
        name, rank = self.name, self.rank
        return [Row(name, s, v, rank, t) for s, v, t in zip(self.steps, self.values, self.times)]


@dataclass
class RunMetrics:
    """Everything read from one run folder: hpctf's files and TensorBoard's event files."""

    run_dir: Path
    series: list[Series] = field(default_factory=list)
    damaged: dict[str, int] = field(default_factory=dict)  # file -> lines skipped: not valid JSON or not a point
    notes: list[str] = field(default_factory=list)  # what was left out, and why (tensorboard missing, ...)

    @property
    def metrics_dir(self) -> Path:
        from ..runpaths import RunPaths

        return RunPaths(self.run_dir).metrics

    @property
    def tensorboard_dir(self) -> Path:
        from ..runpaths import RunPaths

        return RunPaths(self.run_dir).tensorboard

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series)

    def names(self) -> list[str]:
        """Every metric's name, in the order first read (rank 0's file first)."""
        return list(dict.fromkeys(s.name for s in self.series))

    def rows(self) -> list[Row]:
        return [row for s in self.series for row in s.rows()]
