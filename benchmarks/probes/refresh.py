"""Refresh every run of a registry several times; count the scheduler calls three ways.

    python -m benchmarks.probes.refresh --registry PATH --rounds N

Run in a fresh process (submitit's watcher is shared by the whole process).  For each
refresh it prints the wall time and the number of calls seen by (1) submitit's
``watcher.num_calls``, (2) every process started through :mod:`subprocess`, and (3) the
counting ``sacct``/``squeue`` shims first on ``PATH``, which append a line to the file
named by ``$HPCTF_BENCH_CALL_LOG``.  One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

SCHEDULER = ("sacct", "squeue")
spawned: list[str] = []


class CountingPopen(subprocess.Popen):
    def __init__(self, args, *rest, **kw):
        first = args if isinstance(args, (str, bytes)) else args[0]
        spawned.append(os.path.basename(str(first)).split()[0])
        super().__init__(args, *rest, **kw)


def shim_calls() -> int:
    log = Path(os.environ["HPCTF_BENCH_CALL_LOG"])
    return len(log.read_text().splitlines()) if log.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    args = parser.parse_args()
    subprocess.Popen = CountingPopen  # type: ignore[misc] - subprocess.run looks it up here

    from hpctf.executors.slurm.watch import SlurmRun
    from hpctf.registry import Registry
    from hpctf.runs import refresh

    registry = Registry(args.registry)
    records = list(registry.runs())
    rounds = []
    for _ in range(args.rounds):
        watcher0, spawned0, shim0 = SlurmRun.watcher.num_calls, len(spawned), shim_calls()
        t0 = time.perf_counter()
        refresh(registry, records)
        ms = (time.perf_counter() - t0) * 1000
        new = spawned[spawned0:]
        rounds.append(
            {
                "ms": ms,
                "watcher_calls": SlurmRun.watcher.num_calls - watcher0,
                "subprocess_calls": sum(name in SCHEDULER for name in new),
                "other_processes": [name for name in new if name not in SCHEDULER],
                "shim_calls": shim_calls() - shim0,
            }
        )
    print(json.dumps({"records": len(records), "rounds": rounds, "states": Counter(r.state for r in records)}))


if __name__ == "__main__":
    main()
