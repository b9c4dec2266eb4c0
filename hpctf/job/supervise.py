"""The task's one command: run it, report its failure, stop servers that never return.

Markers in shared folders carry what the launchers cannot:

- ``<job>_<rank>_failed`` in the log folder holds a failed task's own exit code: when a
  task fails, ``srun --kill-on-bad-exit`` stops the others and itself exits 143, and
  ``mpirun`` exits 1 (:mod:`hpctf.exits` reads the markers);
- ``<done-dir>/<rank>`` holds a driver's exit code: parameter servers (and workers under
  a chief) run ``tf.distribute.Server(...).join()``, which never returns, and stop once
  every driver has left its marker (:func:`hpctf.job.roles.driver_roles`);
- ``<ready-dir>/<rank>.ready`` (requeue jobs) holds the number of tasks, once the task
  passes the checkpoint signal on to its command: the job script sends the signal only
  when every task has left one. Sent earlier, while srun is still starting the step,
  slurmstepd would deliver it to the TaskProlog or to a bare launcher, and kill them.
"""

from __future__ import annotations

import os
import sys
import time

from .process import Child, forward_signals
from .taskenv import READY_DIR_ENV, job_id

SERVER_STOP_GRACE_S = 10.0


def start(command: list[str], rank: int) -> Child:
    """The task's command as this wrapper's only child, which gets the signals it gets."""
    child = Child(command)
    forward_signals([child])
    announce_ready(rank)
    return child


def announce_ready(rank: int) -> None:
    """Leave ``<rank>.ready`` in ``$HPCTF_READY_DIR``, if the job script asks for it."""
    folder = os.environ.get(READY_DIR_ENV)
    if folder:
        try:
            write_marker(os.path.join(folder, f"{rank}.ready"), int(os.environ.get("HPCTF_WORLD_SIZE", "1")))
        except OSError as err:  # the job script then stops the tasks at the end of their grace time
            print(f"hpctf.runtime: task {rank} cannot say it is ready for checkpoint requests: {err}", file=sys.stderr)


def run_task(command: list[str], rank: int, failure_dir: str | None) -> int:
    """Run one task; if it fails, leave ``<job>_<rank>_failed`` holding its exit code."""
    return report_failure(start(command, rank).wait(), rank, failure_dir)


def run_supervised(command: list[str], rank: int, role: str, drivers: list[int], done_dir: str) -> int:
    """Run ``command`` as a child; drivers leave a marker, servers stop at all markers."""
    child = start(command, rank)
    if rank in drivers:
        code = child.wait()
        write_marker(os.path.join(done_dir, str(rank)), code)
        return code
    markers = [os.path.join(done_dir, str(r)) for r in drivers]
    while child.poll() is None:
        if all(os.path.exists(m) for m in markers):
            child.stop(SERVER_STOP_GRACE_S)
            print(f"hpctf.runtime: {role} task {rank} stopped: training finished", file=sys.stderr)
            return 0
        time.sleep(0.2)
    return child.returncode


def report_failure(code: int, rank: int, failure_dir: str | None) -> int:
    """``code``, after leaving the failure marker if it is one and there is a folder for it."""
    if code and failure_dir:
        try:
            write_marker(os.path.join(failure_dir, f"{job_id(os.environ)}_{rank}_failed"), code)
        except OSError:
            pass  # the exit code still reaches srun; only the detail is lost
    return code


def write_marker(path: str, code: int) -> None:
    # Written then renamed, so a process polling on another node never sees half a file.
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
    os.replace(tmp, path)
