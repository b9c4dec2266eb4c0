"""Figure 1: `hpctf submit` against the floor it cannot avoid.

The floor is starting the same interpreter with hpctf's two big dependencies
(``python -c "import submitit, jinja2"``) plus a raw ``sbatch --parsable`` of the very
script hpctf rendered.  All jobs carry ``--hold`` (through ``--sbatch hold``, so the raw
sbatch of the same script is held too): they never run and are cancelled at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..lab import Context, job_id
from ..measure import Figure, interleave, ratio_at_most, run

NUMBER = 1
NAME = "submit"
TITLE = "hpctf submit vs the floor"
NEEDS_SLURM = True


def submit_command(ctx: Context) -> list[str]:
    return [ctx.hpctf, "submit", "--time", "1", "--sbatch", "hold", "--json", str(ctx.train_script())]


def submit_once(ctx: Context, env: dict[str, str]) -> tuple[float, dict]:
    """One `hpctf submit` in a fresh process: (wall ms, the run record)."""
    wall, done = run(submit_command(ctx), env)
    record = json.loads(done.stdout)
    ctx.track(record["job_id"])
    return wall * 1000, record


def measure(ctx: Context) -> list[Figure]:
    env = ctx.env(home=ctx.folder("homes", "submit"))
    _, record = submit_once(ctx, env)  # warm-up: bytecode cache, and the script to sbatch
    script = Path(record["run_dir"]) / "job.sbatch"
    imports = [ctx.python, "-c", "import submitit, jinja2"]
    raw = ["sbatch", "--parsable", str(script)]

    def raw_sbatch() -> float:
        wall, done = run(raw, env)
        ctx.track(job_id(done.stdout))
        return wall * 1000

    def import_only() -> float:
        return run(imports, env)[0] * 1000

    raw_sbatch(), import_only()  # warm-up
    rounds = ctx.repeats(full=30, quick=3)
    t = interleave(rounds, {"hpctf": lambda: submit_once(ctx, env)[0], "import": import_only, "sbatch": raw_sbatch})
    floor = [i + s for i, s in zip(t["import"], t["sbatch"], strict=True)]
    return [
        Figure(
            "submit.wall",
            "`hpctf submit` of a one-process job, fresh process",
            "ms",
            t["hpctf"],
            baseline='floor: `python -c "import submitit, jinja2"` + raw `sbatch --parsable` of the same script',
            baseline_samples=floor,
            paired=True,
            goal=ratio_at_most(1.5),
            note=(
                "the floor includes importing submitit; "
                "whether submit itself imports it is `coldstart.submit.heavy_imports`"
            ),
        ),
        Figure("submit.sbatch", "raw `sbatch --parsable` of the same script", "ms", t["sbatch"]),
        Figure("submit.imports", '`python -c "import submitit, jinja2"`', "ms", t["import"]),
        Figure(
            "submit.vs_sbatch",
            "`hpctf submit` ÷ raw `sbatch` alone",
            "ms",
            t["hpctf"],
            baseline="raw `sbatch --parsable` of the same script",
            baseline_samples=t["sbatch"],
        ),
    ]
