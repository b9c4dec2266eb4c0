"""What ``hpctf metrics`` prints, for one run or several side by side: the summary table,
the rows as JSON or CSV, and the line for a run that logged nothing."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

from .series import RunMetrics
from .summary import DEFAULT, GUESSED, Summary, summarise

HEADER = ("METRIC", "GOAL", "LAST", "BEST", "BEST STEP", "COUNT", "LAST STEP", "NAN/INF")
ROW_FIELDS = ("job", "name", "step", "value", "rank", "time")


def number(value: float | None) -> str:
    """A value as a cell: 6 significant digits; 'nan', 'inf', '-inf'; '' for none."""
    if value is None:
        return ""
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def label(s: Summary, ranks: set) -> str:
    """The metric's name, with its source where the table has several: 'loss [rank 1]',
    'loss [tensorboard]'."""
    if len(ranks) <= 1:
        return s.name
    return f"{s.name} [{'tensorboard' if s.rank is None else f'rank {s.rank}'}]"


def goal_cell(s: Summary) -> str:
    return {GUESSED: f"{s.goal} (guessed)", DEFAULT: f"{s.goal} (default)"}.get(s.goal_source, s.goal)


def table(runs: Sequence[tuple[str, RunMetrics]], goals: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per metric and run, the runs of a metric together, in the
    order metrics were first logged. The JOB column is there for several runs."""
    grouped: dict[tuple, list[tuple[str, Summary]]] = {}
    for job, run in runs:
        for series in run.series:
            grouped.setdefault((series.name, series.rank), []).append((job, summarise(series, goals)))
    ranks = {rank for _, rank in grouped}
    several = len(runs) > 1
    rows = []
    for group in grouped.values():
        for job, s in group:
            cells = [label(s, ranks), goal_cell(s)]
            cells += [number(s.last), number(s.best), _cell(s.best_step), str(s.count), _cell(s.last_step)]
            cells.append(str(s.nonfinite))
            rows.append(cells[:1] + [job] + cells[1:] if several else cells)
    header = list(HEADER[:1]) + ["JOB"] + list(HEADER[1:]) if several else list(HEADER)
    return header, rows


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def nothing_logged(job: str, run: RunMetrics) -> str:
    """The line for a run with no metrics: where hpctf looked."""
    return (
        f"job {job}: no metrics yet: nothing in {run.metrics_dir} (hpctf.log_metric's rank-<R>.jsonl) "
        f"nor in {run.tensorboard_dir} (TensorBoard event files)"
    )


def _rows(runs: Sequence[tuple[str, RunMetrics]]):
    for job, run in runs:
        for s in run.series:
            for step, value, time in zip(s.steps, s.values, s.times):
                yield job, s.name, step, value, s.rank, time


def _texts(column: list) -> list[str]:
    """Each number of ``column`` as JSON writes it (``NaN``, ``Infinity``, ``null``), in
    one C call: a million rows take ~0.1 s this way and ~2 s as a million dicts to dump."""
    return json.dumps(column, separators=(",", ":"))[1:-1].split(",") if column else []


def as_json(runs: Sequence[tuple[str, RunMetrics]]) -> str:
    """Every point as a JSON array of objects (job, name, step, value, rank, time); NaN
    and infinities as the metrics files write them (``NaN``, ``Infinity``), which
    Python's json reads back."""
    rows = []
    for job, run in runs:
        for s in run.series:
            head = f'{{"job":{json.dumps(job)},"name":{json.dumps(s.name)},"step":'
            rank = json.dumps(s.rank)
            rows += [
                f'{head}{step},"value":{value},"rank":{rank},"time":{time}}}'
                for step, value, time in zip(s.steps, _texts(s.values), _texts(s.times))
            ]
    return "[" + ",".join(rows) + "]"


def as_csv(runs: Sequence[tuple[str, RunMetrics]]) -> str:
    """Every point as CSV with a header; ``nan``/``inf`` as Python writes them, an empty
    rank for TensorBoard's points."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROW_FIELDS)
    writer.writerows(_rows(runs))
    return out.getvalue()
