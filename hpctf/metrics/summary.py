"""A metric in one line: its last value, its best (the lowest or the highest, by its
goal), how many points, the last step and how many were NaN or infinite.

The goal comes from ``--goal NAME=min|max``, else from the name's words: a loss or an
error is best low, an accuracy best high; other names are taken as best low, and the
table says which were guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .series import Series

GOALS = ("min", "max")
LOWER_IS_BETTER = frozenset(
    "loss error err mse mae rmse mape msle nll crossentropy entropy perplexity ppl cost wer cer".split()
)
HIGHER_IS_BETTER = frozenset("acc accuracy auc precision recall f1 iou bleu rouge r2".split())
RATES = frozenset("throughput samples images examples tokens steps".split())  # images_per_second ...
_WORDS = re.compile(r"[^a-z0-9]+")

# How a goal was decided, as the table shows it.
GIVEN, GUESSED, DEFAULT = "given", "from the name", "default"


def guess_goal(name: str) -> tuple[str, str]:
    """(goal, how it was decided) for a metric called ``name``: 'val_accuracy' ->
    ('max', 'from the name'), 'train/epoch_loss' -> ('min', 'from the name'),
    'lr' -> ('min', 'default')."""
    words = set(_WORDS.split(name.lower()))
    if words & HIGHER_IS_BETTER:
        return "max", GUESSED
    if words & LOWER_IS_BETTER:
        return "min", GUESSED
    if words & RATES:
        return "max", GUESSED
    return "min", DEFAULT


@dataclass(frozen=True)
class Summary:
    name: str
    rank: int | None
    goal: str  # min | max
    goal_source: str  # given | from the name | default
    count: int  # points (steps), each step once
    last_step: int | None
    last: float | None  # the value at the last step
    best: float | None  # the lowest/highest finite value (None if none is finite)
    best_step: int | None
    nonfinite: int  # NaN and +-inf values

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def summarise(series: Series, goals: dict[str, str] | None = None) -> Summary:
    """The summary of ``series``; ``goals`` maps names to 'min'/'max' (the rest guessed)."""
    given = (goals or {}).get(series.name)
    goal, source = (given, GIVEN) if given else guess_goal(series.name)
    values = series.values
    finite = list(filter(math.isfinite, values))
    best = best_step = None
    if finite:
        best = (min if goal == "min" else max)(finite)
        best_step = series.steps[values.index(best)]
    return Summary(
        name=series.name,
        rank=series.rank,
        goal=goal,
        goal_source=source,
        count=len(values),
        last_step=series.steps[-1] if values else None,
        last=values[-1] if values else None,
        best=best,
        best_step=best_step,
        nonfinite=len(values) - len(finite),
    )


def parse_goals(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["loss=min", "val/acc=max"]`` -> {name: goal}; ValueError naming the bad item."""
    goals = {}
    for item in items:
        name, sep, goal = item.rpartition("=")
        if not sep or not name or goal not in GOALS:
            raise ValueError(f"--goal={item!r}: must be NAME=min or NAME=max")
        goals[name] = goal
    return goals
