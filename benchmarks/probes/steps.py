"""Run inside one allocation of 3 nodes / 6 tasks: time job steps with and without hpctf.

    python -m benchmarks.probes.steps --rounds 20 --python PY --out FILE

Each round runs, in alternating order, ``srun -N3 -n6 PY -c pass`` and the same step with
``PY -m hpctf.runtime --ps 2 --workers 4 --`` in front; the wall times go to FILE as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

STEP = ["srun", "--nodes=3", "--ntasks=6"]
RUNTIME = ["-m", "hpctf.runtime", "--ps", "2", "--workers", "4"]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    py = args.python
    bare = [*STEP, py, "-c", "pass"]
    hpctf = [*STEP, py, *RUNTIME, "--", py, "-c", "pass"]
    # The hpctf step really sets a TF_CONFIG in every task.
    printed = subprocess.run([*STEP, py, *RUNTIME, "--print"], check=True, capture_output=True, text=True).stdout
    tf_configs = sum(line.startswith("TF_CONFIG=") for line in printed.splitlines())
    timed(bare), timed(hpctf)  # warm-up
    samples: dict[str, list[float]] = {"bare": [], "hpctf": []}
    for i in range(args.rounds):
        for name in ("bare", "hpctf") if i % 2 == 0 else ("hpctf", "bare"):
            samples[name].append(timed(bare if name == "bare" else hpctf))
    with open(args.out, "w") as f:
        json.dump({**samples, "tf_config_tasks": tf_configs, "nodelist": os.environ.get("SLURM_JOB_NODELIST")}, f)


if __name__ == "__main__":
    main()
