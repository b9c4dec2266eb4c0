"""Run inside one allocation: the same training, started by hpctf and by hand, alternately.

    python -m benchmarks.probes.training --plan PLAN.json --out FILE

PLAN (written by ``benchmarks/figures/training.py``) holds ``warmup``, a command run once
unmeasured (it reads TensorFlow's libraries into the page cache on every node), and
``runs``, in the order to run them: each ``{"variant", "round", "cmd", "cwd", "log",
"samples_from"}``.  ``cmd`` is a launcher line (``mpirun ...``, ``srun ...``) or ``bash
SCRIPT`` for a job script; its output goes to ``log``.  ``samples_from`` is a glob for the
file where rank 0 / the chief printed ``samples/s=N`` (hpctf's per-task log), or null for
the command's own output.

FILE gets, rewritten after every run: per run the variant, round, wall seconds, exit status
and the last ``samples/s`` printed; and ``error`` (with the log's tail) if a run failed,
printed no rate, or outlived ``timeout_s``, after which nothing more is run.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import signal
import subprocess
import time

RATE = re.compile(r"^samples/s=([0-9.]+)\s*$", re.M)


def launch(cmd: list[str], cwd: str, log: str, timeout_s: float) -> tuple[float, int | None]:
    """(wall seconds, exit status or None if it was killed at ``timeout_s``)."""
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            code = None
        return time.perf_counter() - t0, code


def rate(text: str) -> float | None:
    found = RATE.findall(text)
    return float(found[-1]) if found else None


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.plan) as f:
        plan = json.load(f)
    result: dict = {"nodelist": os.environ.get("SLURM_JOB_NODELIST"), "runs": [], "error": None}

    def save() -> None:
        with open(args.out + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(args.out + ".tmp", args.out)

    warm = plan["warmup"]
    wall, code = launch(warm["cmd"], warm["cwd"], warm["log"], plan["timeout_s"])
    result["warmup_s"] = wall
    if code != 0:
        result["error"] = f"warm-up {' '.join(warm['cmd'])} exited {code}:\n{read(warm['log'])[-2000:]}"
    for run in plan["runs"] if code == 0 else []:
        wall, code = launch(run["cmd"], run["cwd"], run["log"], plan["timeout_s"])
        files = sorted(glob.glob(run["samples_from"])) if run["samples_from"] else [run["log"]]
        text = "".join(read(p) for p in files)
        entry = {
            "variant": run["variant"],
            "round": run["round"],
            "wall_s": wall,
            "exit": code,
            "samples_per_s": rate(text),
        }
        result["runs"].append(entry)
        if code != 0 or entry["samples_per_s"] is None:
            why = "ran past its time limit" if code is None else f"exited {code}" if code else "printed no samples/s"
            tails = "\n".join(f"== {p}\n{read(p)[-1500:]}" for p in dict.fromkeys([run["log"], *files]))
            result["error"] = f"{run['variant']} (round {run['round']}) {why}: {' '.join(run['cmd'])}\n{tails}"
            break
        save()
    save()


if __name__ == "__main__":
    main()
