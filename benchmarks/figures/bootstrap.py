"""Figure 3: what ``python -m hpctf.runtime`` adds to every task's start.

Measured three ways:

* in a real allocation (sbatch, 3 nodes, 6 tasks): a job step with hpctf's bootstrap in
  front of ``python -c pass`` against the bare step, alternating, many times;
* the same per-task command started serially on this machine with the Slurm variables of
  task 5 of that step (no srun, no tasks sharing CPUs);
* ``hpctf.runtime.task_environment`` in-process for the six tasks of the layout.
"""

from __future__ import annotations

import json

from ..lab import REPO, Context, job_id, wait_for_job
from ..measure import (
    BenchError,
    Figure,
    Stats,
    at_most,
    interleave,
    per_call_us,
    run,
    wall_ms,
)

NUMBER = 3
NAME = "bootstrap"
TITLE = "In-job bootstrap per task"
NEEDS_SLURM = True

# Task 5 of `srun -N3 -n6` in an allocation Slurm laid out as 4 + 1 + 1 tasks.
STEP_ENV = {
    "SLURM_STEP_NODELIST": "node[1-3]",
    "SLURM_STEP_TASKS_PER_NODE": "4,1,1",
    "SLURM_STEP_NUM_TASKS": "6",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "0",
}

JOB = """#!/bin/bash
#SBATCH --job-name=hpctf-bench-bootstrap
#SBATCH --nodes=3
#SBATCH --ntasks=6
#SBATCH --time=15
#SBATCH --output={log}
exec {python} -m benchmarks.probes.steps --rounds {rounds} --python {python} --out {out}
"""


def in_allocation(ctx: Context) -> dict:
    folder = ctx.folder("bootstrap-job")
    out, log = folder / "steps.json", folder / "job.log"
    script = folder / "job.sbatch"
    rounds = ctx.repeats(full=20, quick=2)
    script.write_text(JOB.format(log=log, python=ctx.python, rounds=rounds, out=out))
    _, done = run(["sbatch", "--parsable", f"--chdir={REPO}", str(script)], ctx.env())
    job = ctx.track(job_id(done.stdout))
    state = wait_for_job(ctx, job, timeout=ctx.repeats(full=600, quick=45))
    if not out.exists():
        text = log.read_text() if log.exists() else "(no log)"
        raise BenchError(f"bootstrap job {job} ended {state} without results:\n{text[-2000:]}")
    return json.loads(out.read_text())


def measure(ctx: Context) -> list[Figure]:
    steps = in_allocation(ctx)
    bare_ms, hpctf_ms = steps["bare"], steps["hpctf"]
    added = [h - b for h, b in zip(hpctf_ms, bare_ms, strict=True)]

    env = ctx.env(**STEP_ENV)
    py = ctx.python
    bare = [py, "-c", "pass"]
    hpctf = [py, "-m", "hpctf.runtime", "--ps", "2", "--workers", "4", "--", py, "-c", "pass"]
    variants = {"bare": lambda: wall_ms(bare, env), "hpctf": lambda: wall_ms(hpctf, env)}
    for fn in variants.values():
        fn()  # warm-up
    t = interleave(ctx.repeats(full=40, quick=5), variants)

    from hpctf.job.bootstrap import task_environment

    def six_tasks() -> None:
        for rank in range(6):
            task_environment({**STEP_ENV, "SLURM_PROCID": str(rank)}, ps=2, workers=4)

    pure = [per_call_us(six_tasks, 200) / 6 for _ in range(ctx.repeats(full=30, quick=5))]
    return [
        Figure(
            "bootstrap.step_added",
            "added wall time of a 6-task srun step (3 nodes) with `python -m hpctf.runtime --ps 2 --workers 4`",
            "ms",
            added,
            goal=at_most(50, "ms"),
            note=(
                f"step medians: bare {_median(bare_ms):.0f} ms, with hpctf {_median(hpctf_ms):.0f} ms; "
                f"TF_CONFIG set in {steps['tf_config_tasks']}/6 tasks; tasks start in parallel, so this is "
                "the added latency each task sees (inflated where tasks outnumber cores)"
            ),
            extra={"bare_ms": bare_ms, "hpctf_ms": hpctf_ms, "nodelist": steps["nodelist"]},
        ),
        Figure(
            "bootstrap.step",
            "6-task srun step with hpctf bootstrap",
            "ms",
            hpctf_ms,
            baseline="the same step without it (`srun -N3 -n6 python -c pass`)",
            baseline_samples=bare_ms,
        ),
        Figure(
            "bootstrap.task_added",
            "added wall time per task, one task at a time (no srun, no CPU sharing)",
            "ms",
            [h - b for h, b in zip(t["hpctf"], t["bare"], strict=True)],
            goal=at_most(50, "ms"),
            note=f"task medians: bare {_median(t['bare']):.1f} ms, with hpctf {_median(t['hpctf']):.1f} ms",
        ),
        Figure(
            "bootstrap.task",
            "`python -m hpctf.runtime --ps 2 --workers 4 -- python -c pass`, serially",
            "ms",
            t["hpctf"],
            baseline="`python -c pass`",
            baseline_samples=t["bare"],
        ),
        Figure(
            "bootstrap.task_environment",
            "`hpctf.runtime.task_environment` for one task of 2 ps + 4 workers, in-process",
            "µs",
            pure,
        ),
    ]


def _median(xs: list[float]) -> float:
    return Stats.of(xs).median
