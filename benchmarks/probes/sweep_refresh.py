"""Refresh one sweep (``SweepRun.trials()``) several times; count the scheduler calls three ways.

    python -m benchmarks.probes.sweep_refresh --job ID --rounds N

Run in a fresh process, with ``HPCTF_HOME`` holding the sweep's record.  Each round is
what ``hpctf sweep status ID`` does after loading the record: one refresh of the job
array and its trials as rows.  For each it prints the wall time and the calls seen by
submitit's ``watcher.num_calls``, by :mod:`subprocess` and by the counting shims (as
:mod:`.refresh` does), with the rows' states.  One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections import Counter

from .refresh import SCHEDULER, CountingPopen, shim_calls, spawned


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    args = parser.parse_args()
    subprocess.Popen = CountingPopen  # type: ignore[misc] - subprocess.run looks it up here

    from hpctf.executors.slurm.watch import SlurmRun
    from hpctf.registry import Registry
    from hpctf.sweep.handle import SweepRun

    registry = Registry()
    run = SweepRun(registry.get(args.job), registry)
    rounds = []
    for _ in range(args.rounds):
        watcher0, spawned0, shim0 = SlurmRun.watcher.num_calls, len(spawned), shim_calls()
        t0 = time.perf_counter()
        rows = run.trials()
        ms = (time.perf_counter() - t0) * 1000
        new = spawned[spawned0:]
        rounds.append(
            {
                "ms": ms,
                "rows": len(rows),
                "states": Counter(r.state for r in rows),
                "watcher_calls": SlurmRun.watcher.num_calls - watcher0,
                "subprocess_calls": sum(name in SCHEDULER for name in new),
                "other_processes": [name for name in new if name not in SCHEDULER],
                "shim_calls": shim_calls() - shim0,
            }
        )
    print(json.dumps({"job": args.job, "array_state": run.record.state, "rounds": rounds}))


if __name__ == "__main__":
    main()
