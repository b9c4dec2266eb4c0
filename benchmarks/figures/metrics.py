"""Figure 9: metrics, written in the job and read on the login node.

* ``hpctf.log_metric`` in-process, per call, against the plain alternative a training
  script would write itself: ``f.write(json.dumps(row) + "\\n"); f.flush()``.
* ``hpctf metrics JOB`` in a fresh process over one run of 1,000,000 points (4 metrics x
  250,000 steps), against ``python -c`` reading the same file line by line with
  ``json.loads``; and over 100 runs of 1,000 points each.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..lab import Context
from ..measure import Figure, at_most, interleave, per_call_us, wall_ms
from .tracking import add_runs

NUMBER = 9
NAME = "metrics"
TITLE = "Metrics: logging in the job, reading on the login node"
NEEDS_SLURM = False

NAMES = ("loss", "accuracy", "val_loss", "learning_rate")


def write_points(metrics_dir: Path, steps: int) -> int:
    """A rank-0 file of ``len(NAMES) * steps`` points as hpctf.log_metric writes them."""
    from hpctf.job.metrics import MetricsWriter

    metrics_dir.mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(str(metrics_dir), 0)
    batch = 1000
    for start in range(0, steps, batch):
        for step in range(start, min(start + batch, steps)):
            writer.write({name: 1.0 / (step + i + 1) for i, name in enumerate(NAMES)}, step)
    return len(NAMES) * steps


def logging_figure(ctx: Context) -> Figure:
    from hpctf.job.metrics import MetricsWriter

    folder = ctx.folder("metrics-logging")
    writer = MetricsWriter(str(folder / "hpctf"), 0)
    plain = (folder / "plain.jsonl").open("a")
    calls, step = ctx.repeats(full=20_000, quick=200), [0]

    def hpctf_call() -> None:
        step[0] += 1
        writer.write({"loss": 0.123}, step[0])

    def plain_call() -> None:
        step[0] += 1
        plain.write(json.dumps({"name": "loss", "step": step[0], "value": 0.123, "time": time.time()}) + "\n")
        plain.flush()

    t = interleave(
        ctx.repeats(full=30, quick=3),
        {"hpctf": lambda: per_call_us(hpctf_call, calls), "plain": lambda: per_call_us(plain_call, calls)},
    )
    plain.close()
    return Figure(
        "metrics.log_metric",
        "`hpctf.log_metric(name, value, step)` on rank 0, one call, in-process",
        "µs",
        t["hpctf"],
        baseline='`f.write(json.dumps(row) + "\\n"); f.flush()`, the same row',
        baseline_samples=t["plain"],
        goal=at_most(20, "µs"),
    )


def reading_figures(ctx: Context) -> list[Figure]:
    home = ctx.folder("homes", "metrics")
    big_steps = ctx.sizes(full=[250_000], quick=[2_500])[0]
    many, small_steps = ctx.repeats(full=100, quick=5), 250
    run_dirs = [home / "runs" / f"run-{i}" for i in range(many + 1)]
    add_runs(home, [str(900_000 + i) for i in range(many + 1)], state="COMPLETED", run_dirs=run_dirs)
    points = write_points(run_dirs[0] / "metrics", big_steps)
    for run_dir in run_dirs[1:]:
        write_points(run_dir / "metrics", small_steps)
    env = ctx.env(home=home)
    big = [ctx.hpctf, "metrics", "900000"]
    several = [ctx.hpctf, "metrics", *(str(900_000 + i) for i in range(1, many + 1))]
    rank_file = run_dirs[0] / "metrics" / "rank-0.jsonl"
    plain = [ctx.python, "-c", f"import json\n[json.loads(line) for line in open({str(rank_file)!r})]"]
    for cmd in (big, several, plain):
        wall_ms(cmd, env)  # warm-up
    t = interleave(
        ctx.repeats(full=10, quick=2),
        {name: (lambda c=cmd: wall_ms(c, env)) for name, cmd in (("big", big), ("several", several), ("plain", plain))},
    )
    return [
        Figure(
            "metrics.read.one_run",
            f"`hpctf metrics JOB`, fresh process, one run of {points:,} points ({len(NAMES)} metrics)",
            "ms",
            t["big"],
            baseline="`python -c` reading the same file with `json.loads` line by line (no summary)",
            baseline_samples=t["plain"],
            goal=at_most(1000, "ms"),
        ),
        Figure(
            "metrics.read.many_runs",
            f"`hpctf metrics` of {many} runs, {len(NAMES) * small_steps:,} points each, fresh process",
            "ms",
            t["several"],
            goal=at_most(1000, "ms"),
        ),
    ]


def measure(ctx: Context) -> list[Figure]:
    return [logging_figure(ctx), *reading_figures(ctx)]
