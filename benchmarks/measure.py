"""Timing helpers and the Figure record every benchmark returns.

A figure is one measured quantity: its samples (N of them), optionally the samples of
the plain alternative measured side by side in the same rounds, the ratio of the two
medians, and a goal.  Everything is kept in the unit shown (ms unless said otherwise).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


class BenchError(RuntimeError):
    """A benchmark could not measure what it meant to (a command failed, a job hung)."""


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    min: float
    max: float
    q1: float
    q3: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise BenchError("no samples")
        xs = sorted(samples)
        q1, q3 = (
            (statistics.quantiles(xs, n=4, method="inclusive")[i] for i in (0, 2)) if len(xs) > 1 else (xs[0], xs[0])
        )
        return cls(n=len(xs), median=statistics.median(xs), min=xs[0], max=xs[-1], q1=q1, q3=q3)

    def to_dict(self) -> dict:
        return {"n": self.n, "median": self.median, "min": self.min, "max": self.max, "q1": self.q1, "q3": self.q3}


@dataclass(frozen=True)
class Goal:
    """``on`` is "ratio" or "median"; ``op`` is "<=", ">=" or "=="."""

    on: str
    op: str
    target: float
    text: str

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.op == "<=":
            return value <= self.target
        if self.op == ">=":
            return value >= self.target
        return value == self.target


def ratio_at_most(target: float) -> Goal:
    return Goal("ratio", "<=", target, f"ratio ≤ {target:g}")


def ratio_at_least(target: float) -> Goal:
    """For rates (higher is better): hpctf's median ÷ the alternative's must reach ``target``."""
    return Goal("ratio", ">=", target, f"ratio ≥ {target:g}")


def at_most(target: float, unit: str) -> Goal:
    return Goal("median", "<=", target, f"≤ {target:g} {unit}")


def exactly(target: float, unit: str) -> Goal:
    return Goal("median", "==", target, f"= {target:g} {unit}")


@dataclass
class Figure:
    key: str  # unique, e.g. "submit.wall"
    what: str  # one line: what was measured
    unit: str  # "ms", "µs", "calls", "modules"
    samples: list[float]
    baseline: str | None = None  # the plain alternative, in words
    baseline_samples: list[float] | None = None
    ratio: float | None = None  # default: median / baseline median
    ratio_samples: list[float] | None = None  # per-round ratios, for their spread
    # samples[i] and baseline_samples[i] were taken in the same round (interleaved): the
    # per-round ratios (ratio_samples) are worked out from them
    paired: bool = False
    goal: Goal | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)  # anything else worth keeping in the JSON

    def __post_init__(self) -> None:
        if self.paired and self.ratio_samples is None and self.baseline_samples and len(self.samples) > 1:
            self.ratio_samples = [a / b for a, b in zip(self.samples, self.baseline_samples, strict=True)]
        if self.ratio is None and self.baseline_samples:
            base = Stats.of(self.baseline_samples).median
            self.ratio = Stats.of(self.samples).median / base if base else None

    @property
    def stats(self) -> Stats:
        return Stats.of(self.samples)

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.goal.met(self.ratio if self.goal.on == "ratio" else self.stats.median)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "what": self.what,
            "unit": self.unit,
            **self.stats.to_dict(),
            "samples": self.samples,
            "baseline": self.baseline,
            "baseline_stats": Stats.of(self.baseline_samples).to_dict() if self.baseline_samples else None,
            "ratio": self.ratio,
            "ratio_stats": Stats.of(self.ratio_samples).to_dict() if self.ratio_samples else None,
            "goal": self.goal.text if self.goal else None,
            "met": self.met,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------


def run(
    cmd: Sequence[str], env: Mapping[str, str], *, timeout: float = 120, cwd: str | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command to completion; (wall seconds, result). A non-zero exit is an error."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            list(cmd), check=False, env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=cwd
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(cmd)}: no answer in {timeout}s") from None
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-2000:]}")
    return wall, done


def wall_ms(cmd: Sequence[str], env: Mapping[str, str], **kw) -> float:
    return run(cmd, env, **kw)[0] * 1000


def interleave(rounds: int, variants: Mapping[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Call every variant once per round, rotating the order, so that drift in the
    machine's load hits all of them alike; {name: [one sample per round]}."""
    names = list(variants)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Mean µs per call of ``fn`` over ``calls`` back-to-back calls (one sample)."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def per_call_ms(fn: Callable[[], object], calls: int = 1) -> float:
    return per_call_us(fn, calls) / 1000
