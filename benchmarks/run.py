"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME,...] [--out DIR]``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .figures import GROUPS
from .lab import REPO, Context, slurm_problem
from .machine import describe

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    names = ", ".join(g.NAME for g in GROUPS)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (the smoke test)")
    parser.add_argument("--only", default="", help=f"comma-separated figure groups: {names}")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for results.json and results.md [benchmarks/results]"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other groups of an existing OUT/results.json; replace only the groups run now",
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="work folder every cluster node can see [a new folder under /tmp, removed afterwards]",
    )
    args = parser.parse_args(argv)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(wanted) - {g.NAME for g in GROUPS}
    if unknown:
        parser.error(f"unknown figure group(s) {', '.join(sorted(unknown))}; known: {names}")
    args.groups = [g for g in GROUPS if not wanted or g.NAME in wanted]
    return args


def say(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def run_group(ctx: Context, group) -> dict:
    entry = {
        "number": group.NUMBER,
        "name": group.NAME,
        "title": group.TITLE,
        "status": "ok",
        "error": None,
        "figures": [],
    }
    t0 = time.perf_counter()
    if group.NEEDS_SLURM and ctx.slurm_problem:
        entry.update(status="skipped", error=f"needs Slurm: {ctx.slurm_problem}")
    else:
        try:
            entry["figures"] = [f.to_dict() for f in group.measure(ctx)]
        except Exception as err:  # noqa: BLE001 - one broken group must not stop the others
            entry.update(status="error", error=f"{type(err).__name__}: {err}")
        finally:
            ctx.cancel_jobs()
    entry["seconds"] = time.perf_counter() - t0
    say(
        f"{group.NUMBER}. {group.NAME}: {entry['status']}, {len(entry['figures'])} figures, {entry['seconds']:.1f} s"
        + (f" ({entry['error']})" if entry["error"] else "")
    )
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not (Path(sys.executable).parent / "hpctf").exists():
        say(
            f"no hpctf next to {sys.executable}: "
            "run the suite with the project's interpreter (.venv/bin/python -m benchmarks)"
        )
        return 2
    previous = None
    if args.merge and (args.out / "results.json").exists():
        previous = json.loads((args.out / "results.json").read_text())
        if previous["quick"] != args.quick:
            say(f"--merge: {_shown(args.out / 'results.json')} and this run differ in --quick; not mixing them")
            return 2
    own_scratch = args.scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="hpctf-bench-", dir="/tmp")) if own_scratch else args.scratch.absolute()
    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o755)
    ctx = Context(quick=args.quick, scratch=scratch)
    ctx.slurm_problem = slurm_problem(ctx.env())
    if ctx.slurm_problem:
        say(f"Slurm unavailable, its figures are skipped: {ctx.slurm_problem}")
    t0 = time.perf_counter()
    results = {
        "command": shlex.join(["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": describe(ctx.env()),
        "groups": [],
    }
    try:
        results["groups"] = [run_group(ctx, g) for g in args.groups]
    finally:
        ctx.cancel_jobs()
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    results["seconds"] = time.perf_counter() - t0
    results["machine"]["load_average_end"] = os.getloadavg()
    ok = all(g["status"] == "ok" for g in results["groups"])
    if previous is not None:
        results = merged(previous, results)
    json_path, md_path = report.write(results, args.out)
    say(f"wrote {_shown(json_path)} and {_shown(md_path)}")
    return 0 if ok else 1


def merged(old: dict, results: dict) -> dict:
    """An earlier run's results with this run's groups in place of its own.

    Each group from this run keeps how it was measured under ``run`` (command, date, hpctf
    version, duration, load), which the Markdown shows under its heading; the rest of the
    file (machine, command, duration) still describes the earlier run.
    """
    m = results["machine"]
    run = {
        "command": results["command"],
        "date": m["date"],
        "hpctf": m["hpctf"],
        "seconds": results["seconds"],
        "load_average": m["load_average"],
        "load_average_end": m["load_average_end"],
    }
    names = {g["name"] for g in results["groups"]}
    old["groups"] = sorted(
        [g for g in old["groups"] if g["name"] not in names] + [{**g, "run": run} for g in results["groups"]],
        key=lambda g: g["number"],
    )
    return old


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
