"""Figure 4: scheduler calls per status refresh, and `hpctf ls` over a long history.

Calls are counted three ways in a fresh process that refreshes 100 tracked jobs (real,
held jobs): submitit's ``watcher.num_calls``, every ``subprocess`` launch of
``sacct``/``squeue``, and counting shims for both first on ``PATH``.  ``hpctf ls`` is then
timed over a registry of 10,000 finished runs.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from ..lab import Context
from ..measure import Figure, at_most, exactly, interleave, run, wall_ms

NUMBER = 4
NAME = "tracking"
TITLE = "Status refresh and run history"
NEEDS_SLURM = True

SHIM = """#!/bin/sh
# Counts calls for the hpctf benchmarks, then runs the real command.
echo "{name} $*" >>"${{HPCTF_BENCH_CALL_LOG:-/dev/null}}"
exec {real} "$@"
"""

# The plain alternative to `hpctf ls --json`: read the same rows, print them as JSON.
PLAIN_LS = (
    "import json, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.row_factory = sqlite3.Row; "
    "limit = '' if sys.argv[2] == '0' else ' LIMIT ' + sys.argv[2]; "
    "sys.stdout.write(json.dumps([dict(r) for r in db.execute('SELECT * FROM runs ORDER BY run_id DESC' + limit)]))"
)


# -- helpers shared with the growth figures --------------------------------------------


def add_runs(home: Path, job_ids: list[str], state: str = "PENDING", run_dirs: list[Path] | None = None) -> Path:
    """Record one run per job id in ``home``'s registry (one transaction); its path.
    ``run_dirs``: each run's folder (default: ``home`` for all)."""
    import hpctf
    from hpctf.registry import Registry, RunRecord

    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (home / "train.py").write_text("print('hello')\n")
    spec = json.dumps(hpctf.TensorFlow(source_directory=str(home), entry_script="train.py").to_dict(), default=str)
    finished = state not in ("PENDING", "RUNNING")
    now = time.time()
    registry = Registry(home / "registry.sqlite")
    registry._db.execute("BEGIN")  # private, but 10,000 single-row commits would take minutes
    for i, job in enumerate(job_ids):
        registry.add(
            RunRecord(
                job_id=job,
                target="slurm",
                name=f"bench-{i}",
                backend="single",
                shape="1x1",
                run_dir=str(run_dirs[i] if run_dirs else home),
                log_dir=str(logs),
                command="train.py",
                submitted=now - 60 + i * 1e-3,
                state=state,
                exit_code=0 if finished else None,
                started=now - 50 if finished else None,
                ended=now - 10 if finished else None,
                nodes="node1" if finished else None,
                spec=spec,
            )
        )
    registry._db.execute("COMMIT")
    registry.close()
    return registry.path


def counting_env(ctx: Context, home: Path, names: tuple[str, ...] = ("sacct", "squeue")) -> tuple[dict[str, str], Path]:
    """An environment whose ``names`` (sacct, squeue) log every call to the returned file,
    one line each: the command's name, then its arguments."""
    import shutil

    shims = ctx.folder("shims")
    env = ctx.env(home=home)
    for name in names:
        real = shutil.which(name, path=env["PATH"])
        (shims / name).write_text(SHIM.format(name=name, real=real))
        (shims / name).chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    calls = shims / "calls.log"
    env.update(PATH=f"{shims}:{env['PATH']}", HPCTF_BENCH_CALL_LOG=str(calls))
    return env, calls


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def probe_refresh(ctx: Context, env: dict[str, str], registry: Path, rounds: int) -> dict:
    """Run probes/refresh.py in a fresh process; its JSON."""
    _, done = run(
        [ctx.python, "-m", "benchmarks.probes.refresh", "--registry", str(registry), "--rounds", str(rounds)],
        env,
        timeout=300,
    )
    return json.loads(done.stdout)


def cli_calls(
    ctx: Context, cmd: list[str], env: dict[str, str], calls: Path, rounds: int
) -> tuple[list[float], list[float]]:
    """(wall ms, scheduler calls) of each of ``rounds`` runs of ``cmd``."""
    walls, counts = [], []
    for _ in range(rounds):
        before = count_lines(calls)
        walls.append(wall_ms(cmd, env))
        counts.append(float(count_lines(calls) - before))
    return walls, counts


# -- the figures -----------------------------------------------------------------------


def measure(ctx: Context) -> list[Figure]:
    return scheduler_calls(ctx) + long_history(ctx)


def scheduler_calls(ctx: Context) -> list[Figure]:
    n = ctx.sizes([100], [5])[0]
    rounds = ctx.repeats(full=20, quick=3)
    jobs = ctx.held_jobs(n)
    home = ctx.folder("homes", "tracking")
    registry = add_runs(home, jobs)
    env, calls = counting_env(ctx, home)
    result = probe_refresh(ctx, env, registry, rounds)
    r = result["rounds"]
    sacct = ["sacct", "-o", "JobID,State,ExitCode,NodeList,Start,End", "--parsable2", "-j", ",".join(jobs)]
    raw = [wall_ms(sacct, ctx.env()) for _ in range(rounds)]
    ls_ms, ls_calls = cli_calls(ctx, [ctx.hpctf, "ls", "-n", "0", "--json"], env, calls, ctx.repeats(full=10, quick=2))
    _, st_calls = cli_calls(ctx, [ctx.hpctf, "status", "--json", jobs[-1]], env, calls, ctx.repeats(full=10, quick=2))
    others = sorted({p for x in r for p in x["other_processes"]})
    one = exactly(1, "call")
    what = f"scheduler calls per refresh of {n} tracked jobs"
    return [
        Figure(
            "tracking.calls.watcher",
            f"{what}: submitit `watcher.num_calls`",
            "calls",
            [x["watcher_calls"] for x in r],
            goal=one,
            note=f"states seen: {result['states']}",
        ),
        Figure(
            "tracking.calls.subprocess",
            f"{what}: sacct/squeue launched through `subprocess`",
            "calls",
            [x["subprocess_calls"] for x in r],
            goal=one,
            note=("other processes started: " + ", ".join(others)) if others else "no other process started",
        ),
        Figure(
            "tracking.calls.shim",
            f"{what}: counting sacct/squeue shims first on PATH",
            "calls",
            [x["shim_calls"] for x in r],
            goal=one,
        ),
        Figure(
            "tracking.calls.cli_ls",
            f"scheduler calls per `hpctf ls -n 0 --json` with {n} unfinished runs (shims)",
            "calls",
            ls_calls,
            goal=one,
        ),
        Figure(
            "tracking.calls.cli_status", "scheduler calls per `hpctf status JOB` (shims)", "calls", st_calls, goal=one
        ),
        Figure(
            "tracking.refresh",
            f"`hpctf.runs.refresh` of {n} unfinished runs, in-process (incl. saving them)",
            "ms",
            [x["ms"] for x in r],
            baseline=f"one raw `sacct -j <{n} ids>`",
            baseline_samples=raw,
        ),
        Figure("tracking.ls_live", f"`hpctf ls -n 0 --json` with {n} unfinished runs (refreshes them)", "ms", ls_ms),
    ]


def long_history(ctx: Context) -> list[Figure]:
    n = ctx.sizes([10_000], [1_000])[0]
    home = ctx.folder("homes", "history")
    registry = add_runs(home, [str(1_000_000 + i) for i in range(n)], state="COMPLETED")
    env, calls = counting_env(ctx, home)
    commands = {
        "json": [ctx.hpctf, "ls", "-n", "0", "--json"],
        "table": [ctx.hpctf, "ls"],
        "plain_json": [ctx.python, "-c", PLAIN_LS, str(registry), "0"],
        "plain_50": [ctx.python, "-c", PLAIN_LS, str(registry), "50"],
    }
    variants = {name: (lambda c=cmd: wall_ms(c, env)) for name, cmd in commands.items()}
    for fn in variants.values():
        fn()  # warm-up
    printed = len(run(commands["json"], env)[1].stdout)
    t = interleave(ctx.repeats(full=20, quick=2), variants)
    scheduler = count_lines(calls)
    note = f"prints {printed / 1e6:.1f} MB; {scheduler} scheduler calls in all (every run is finished)"
    return [
        Figure(
            "tracking.ls_all_json",
            f"`hpctf ls -n 0 --json` over {n:,} finished runs",
            "ms",
            t["json"],
            baseline="plain Python: sqlite3 SELECT * + json.dumps",
            baseline_samples=t["plain_json"],
            goal=at_most(200, "ms"),
            note=note,
        ),
        Figure(
            "tracking.ls_table",
            f"`hpctf ls` (newest 50, table) over {n:,} finished runs",
            "ms",
            t["table"],
            baseline="plain Python: sqlite3 SELECT … LIMIT 50 + json.dumps",
            baseline_samples=t["plain_50"],
            goal=at_most(200, "ms"),
        ),
    ]
