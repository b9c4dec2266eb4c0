"""Figure 8: how hpctf's costs grow with the number of jobs and nodes.

* `hpctf submit` of 1, 10 and 100 jobs back to back (each a fresh process, all held);
* `hpctf status`, `hpctf ls` and `hpctf.runs.refresh` with 1, 10 and 100 tracked jobs;
* `hpctf render` for 1 to 64 nodes (Horovod backend, 4 processes per node), in-process
  (warm Jinja environment) and as a fresh CLI process.

The ratio column is growth: the median at this size ÷ the median at the smallest size.
"""

from __future__ import annotations

import math

from ..lab import Context
from ..measure import Figure, Stats, per_call_ms, wall_ms
from .submit import submit_once
from .tracking import add_runs, counting_env, probe_refresh

NUMBER = 8
NAME = "growth"
TITLE = "Growth with jobs and nodes"
NEEDS_SLURM = True


def measure(ctx: Context) -> list[Figure]:
    return submits(ctx) + refreshes(ctx) + renders(ctx)


def with_growth(figures: list[Figure]) -> list[Figure]:
    """Set each figure's ratio to its median ÷ the first figure's median."""
    first = figures[0].stats.median
    for fig in figures:
        fig.ratio = fig.stats.median / first if first else None
        fig.baseline = "growth vs the smallest size"
    return figures


def submits(ctx: Context) -> list[Figure]:
    per_job, totals = [], []
    submit_once(ctx, ctx.env(home=ctx.folder("homes", "growth-warm-up")))  # fills the bytecode cache
    for k in ctx.sizes([1, 10, 100], [1, 2]):
        env = ctx.env(home=ctx.folder("homes", f"growth-submit-{k}"))
        batches = max(1, math.ceil(ctx.repeats(full=10, quick=2) / k))  # ≥ 10 submits a size
        samples, batch_totals = [], []
        for _ in range(batches):
            walls = [submit_once(ctx, env)[0] for _ in range(k)]
            samples += walls
            batch_totals.append(sum(walls))
        ctx.cancel_jobs()
        per_job.append(
            Figure(f"growth.submit.{k}.per_job", f"`hpctf submit` ×{k} back to back: per job", "ms", samples)
        )
        totals.append(
            Figure(
                f"growth.submit.{k}.total",
                f"`hpctf submit` ×{k} back to back: total",
                "ms",
                batch_totals,
                note=f"{batches} batch(es)",
            )
        )
    return with_growth(per_job) + totals


def refreshes(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes([1, 10, 100], [1, 2])
    rounds = ctx.repeats(full=10, quick=2)
    jobs = ctx.held_jobs(max(sizes))
    status, ls, inproc = [], [], []
    for k in sizes:
        home = ctx.folder("homes", f"growth-refresh-{k}")
        registry = add_runs(home, jobs[:k])
        env, _ = counting_env(ctx, home)
        status.append(
            Figure(
                f"growth.status.{k}",
                f"`hpctf status JOB --json`, {k} tracked job(s) in the registry",
                "ms",
                [wall_ms([ctx.hpctf, "status", "--json", jobs[0]], env) for _ in range(rounds)],
            )
        )
        ls.append(
            Figure(
                f"growth.ls.{k}",
                f"`hpctf ls -n 0 --json`, refreshing {k} unfinished job(s)",
                "ms",
                [wall_ms([ctx.hpctf, "ls", "-n", "0", "--json"], env) for _ in range(rounds)],
            )
        )
        probe = probe_refresh(ctx, env, registry, rounds)
        calls = Stats.of([r["shim_calls"] for r in probe["rounds"]]).median
        inproc.append(
            Figure(
                f"growth.refresh.{k}",
                f"`hpctf.runs.refresh` of {k} unfinished job(s), in-process",
                "ms",
                [r["ms"] for r in probe["rounds"]],
                note=f"{calls:g} scheduler call(s) per refresh",
            )
        )
    return with_growth(status) + with_growth(ls) + with_growth(inproc)


def renders(ctx: Context) -> list[Figure]:
    import hpctf
    from hpctf.render import JobPaths, render_script

    train = ctx.train_script()
    logs = ctx.folder("growth-render-logs")
    env = ctx.env()
    rounds = ctx.repeats(full=20, quick=3)
    inproc, cli = [], []
    for nodes in ctx.sizes([1, 2, 4, 8, 16, 32, 64], [1, 2]):
        spec = hpctf.TensorFlow(
            source_directory=str(train.parent),
            entry_script=train.name,
            distributed_backend="mpi",
            node_count=nodes,
            process_count_per_node=4,
        )
        paths = JobPaths(workdir=train.parent, log_dir=logs)
        render_script(spec, paths)  # warm-up: compiles the templates once per process
        inproc.append(
            Figure(
                f"growth.render.{nodes}",
                f"`render_script`, {nodes} node(s) × 4 processes, in-process",
                "ms",
                [per_call_ms(lambda s=spec, p=paths: render_script(s, p), 20) for _ in range(rounds)],
            )
        )
        cmd = [
            ctx.hpctf,
            "render",
            "--backend",
            "mpi",
            "--nodes",
            str(nodes),
            "--procs-per-node",
            "4",
            "--log-dir",
            str(logs),
            str(train),
        ]
        wall_ms(cmd, env)  # warm-up
        cli.append(
            Figure(
                f"growth.render_cli.{nodes}",
                f"`hpctf render`, {nodes} node(s) × 4 processes, fresh process",
                "ms",
                [wall_ms(cmd, env) for _ in range(rounds)],
            )
        )
    return with_growth(inproc) + with_growth(cli)
