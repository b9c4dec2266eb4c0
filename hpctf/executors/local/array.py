"""A job array on this machine: the local target's sweeps, one element a trial.

Slurm runs a sweep's script once per element of ``--array=0-N%K``; here one supervisor,
``python -m hpctf.executors.local.array``, does the same in the run's session (its process
id is ``local.pid``, so :class:`~hpctf.executors.local.handle.LocalRun` follows and cancels
the array as one job). It starts the script once per element 0..N, in order, at most
``parallel`` at once. ``parallel`` None means one at a time: a trial may use every core
and GPU of the machine (TensorFlow does by default), and this machine is all the target
has; ``--parallel K`` asks for more.

Each element gets what Slurm gives an array element: ``SLURM_ARRAY_JOB_ID`` (the array's
id, ``L<hex>``), ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_COUNT``/``MIN``/``MAX``/``STEP``,
and a ``SLURM_JOB_ID`` of its own. On Slurm that is a number, and hpctf's parameter-server
jobs take their ports from it (:mod:`hpctf.job.ports`: neighbouring ids, disjoint
ranges); so it is a number here too, the array's hex id plus the element's index, moved
on where a running element has that range or a port of it is taken. The element's
output goes where the script's ``#SBATCH --output=%A_%a_0_log.out`` says; the script
writes ``<array>_<index>_exitcode`` itself (its EXIT trap).

What the supervisor knows it keeps in ``<array>_<index>_element.json`` (written whole, by
rename): the element's state, start and end (epoch seconds), exit code.
:func:`element_fields` reads them as sacct's fields for ``Executor.elements``. When every
element has ended it writes the array's own ``<array>_exitcode``: 0 if every element
exited 0, else 1.

Cancelling (SIGTERM, SIGINT or SIGHUP, or the run's ``local.cancelled`` marker): no
waiting element starts; running ones, which the session-wide SIGTERM of
``LocalRun.cancel`` reaches too, get ``STOP_GRACE_S`` to end (their EXIT trap tells the
study), then SIGTERM to their process group, then SIGKILL. They read CANCELLED.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from ...exits import exit_status_file
from ...job.ports import job_port_base, job_range_slots
from ...runpaths import log_file
from .launch import CANCELLED_FILE, port_free

DEFAULT_PARALLEL = 1
STOP_GRACE_S = 5.0
POLL_S = 0.1
# After a cancel, what running elements get and when (seconds since it).
HURRY = ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 2 * STOP_GRACE_S))
PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"


def element_id(array_id: str, index: int) -> str:
    """Slurm's ``%A_%a``: the name of the element's files."""
    return f"{array_id}_{index}"


def element_file(log_dir: str | Path, array_id: str, index: int) -> Path:
    return Path(log_dir) / f"{element_id(array_id, index)}_element.json"


def read_element(log_dir: str | Path, array_id: str, index: int) -> dict | None:
    """What the supervisor wrote about an element; None before it started."""
    try:
        return json.loads(element_file(log_dir, array_id, index).read_text())
    except (OSError, ValueError):
        return None


def _write_whole(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _sacct_time(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%dT%H:%M:%S") if epoch else "Unknown"


def _read_code(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def element_fields(
    log_dir: str | Path, array_id: str, size: int, *, over: bool, cancelled: bool
) -> dict[int, dict[str, str]]:
    """Every element's sacct-like fields (``State``, ``Start``, ``End``, ``ExitCode``), by
    index. ``over``: the supervisor is gone, so an element it did not see end has ended
    (as its own exit-status file says, else CANCELLED after a cancel, else FAILED: killed
    with the supervisor); ``cancelled``: the run was cancelled."""
    out = {}
    for index in range(size):
        kept = read_element(log_dir, array_id, index) or {"state": PENDING}
        state, code = kept["state"], kept.get("exit_code")
        if over and state in (PENDING, RUNNING):
            code = _read_code(exit_status_file(log_dir, element_id(array_id, index))) if state == RUNNING else None
            state = COMPLETED if code == 0 else CANCELLED if cancelled else FAILED
        signum = kept.get("signal") or 0
        out[index] = {
            "JobID": element_id(array_id, index),
            "State": state,
            "Start": _sacct_time(kept.get("start")),
            "End": _sacct_time(kept.get("end")),
            "ExitCode": f"{0 if signum else code or 0}:{signum}",
            "NodeList": "localhost" if state != PENDING else "",
        }
    return out


def array_number(array_id: str) -> int:
    """The number in a local job id: ``L00ff10`` -> 0xff10."""
    try:
        return int(array_id.lstrip("L"), 16)
    except ValueError:
        return 0


class Supervisor:
    """Runs ``script`` once per element, at most ``parallel`` at once; see the module."""

    def __init__(self, script: Path, log_dir: Path, array_id: str, trials: int, parallel: int, ports: int):
        self.script, self.log_dir, self.array_id = script, Path(log_dir), array_id
        self.trials, self.parallel, self.ports = trials, max(parallel, 1), ports
        self.running: dict[int, tuple[subprocess.Popen, dict]] = {}
        self.codes: dict[int, int | None] = {}
        self.stopping_since: float | None = None
        self.signalled = 0  # how many of HURRY the running elements were sent

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        pending = list(range(self.trials))
        while pending or self.running:
            self._reap()
            if self.stopping_since is None and Path(CANCELLED_FILE).exists():  # it runs in the run folder
                self._stop()
            if self.stopping_since is not None:
                for index in pending:
                    self._write(index, {"state": CANCELLED})
                    self.codes[index] = None
                pending = []
                self._hurry()
            while pending and len(self.running) < self.parallel and self.stopping_since is None:
                self._start(pending.pop(0))
            time.sleep(POLL_S)
        code = 0 if all(c == 0 for c in self.codes.values()) else 1
        _write_whole(exit_status_file(self.log_dir, self.array_id), f"{code}\n")
        return code

    def _stop(self, *_: object) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()

    def _hurry(self) -> None:
        """Running elements that outlast the grace: SIGTERM to their process group, then SIGKILL."""
        waited = time.monotonic() - (self.stopping_since or time.monotonic())
        for step, (signum, after) in enumerate(HURRY, 1):
            if waited >= after and self.signalled < step:
                self.signalled = step
                for process, _ in self.running.values():
                    try:
                        os.killpg(process.pid, signum)
                    except ProcessLookupError:
                        pass

    # -- one element -------------------------------------------------------------------
    def _start(self, index: int) -> None:
        number = self._job_number(index)
        env = {
            **os.environ,
            "SLURM_ARRAY_JOB_ID": self.array_id,
            "SLURM_ARRAY_TASK_ID": str(index),
            "SLURM_ARRAY_TASK_COUNT": str(self.trials),
            "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_ARRAY_TASK_MAX": str(self.trials - 1),
            "SLURM_ARRAY_TASK_STEP": "1",
            "SLURM_JOB_ID": str(number),
            "SLURM_JOBID": str(number),
        }
        name = element_id(self.array_id, index)
        kept = {"job_number": number, "state": RUNNING, "start": time.time()}
        try:
            with (
                open(log_file(self.log_dir, name, 0, "out"), "ab") as out,
                open(log_file(self.log_dir, name, 0, "err"), "ab") as err,
            ):
                process = subprocess.Popen(
                    ["bash", str(self.script)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    process_group=0,  # the supervisor can stop the element and all it started
                )
        except OSError as error:
            print(f"hpctf: element {name} did not start: {error}", file=sys.stderr, flush=True)
            self._write(index, {**kept, "state": FAILED, "end": time.time(), "exit_code": 127})
            self.codes[index] = 127
            return
        kept["pid"] = process.pid
        self._write(index, kept)
        self.running[index] = (process, kept)
        print(f"hpctf: element {name} started (SLURM_JOB_ID={number})", file=sys.stderr, flush=True)

    def _reap(self) -> None:
        for index, (process, kept) in list(self.running.items()):
            status = process.poll()
            if status is None:
                continue
            del self.running[index]
            code, signum = (status, 0) if status >= 0 else (128 - status, -status)
            state = COMPLETED if status == 0 else CANCELLED if self.stopping_since is not None else FAILED
            self._write(index, {**kept, "state": state, "end": time.time(), "exit_code": code, "signal": signum})
            self.codes[index] = code
            name = element_id(self.array_id, index)
            print(f"hpctf: element {name} ended {state} (exit code {code})", file=sys.stderr, flush=True)

    def _write(self, index: int, kept: dict) -> None:
        _write_whole(element_file(self.log_dir, self.array_id, index), json.dumps({"index": index, **kept}) + "\n")

    def _job_number(self, index: int) -> int:
        """The element's SLURM_JOB_ID; with ``ports``, one whose port range is free and no
        running element's (see the module)."""
        first = array_number(self.array_id) + index
        if not self.ports:
            return first
        slots = job_range_slots(self.ports)
        taken = {kept["job_number"] % slots for _, kept in self.running.values()}
        for number in range(first, first + slots):
            base = job_port_base(str(number), self.ports)
            if number % slots not in taken and all(port_free(base + i) for i in range(self.ports)):
                return number
        return first  # every range is in use: let the tasks say which port they could not bind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpctf.executors.local.array", description=__doc__.split("\n")[0])
    parser.add_argument("script", type=Path)
    parser.add_argument("--job-id", required=True, help="the array's id (Slurm's %%A)")
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--trials", type=int, required=True, help="elements 0..TRIALS-1")
    parser.add_argument("--parallel", type=int, default=None, help=f"at most this many at once [{DEFAULT_PARALLEL}]")
    parser.add_argument("--ports", type=int, default=0, help="ports each element's tasks listen on (ps jobs)")
    args = parser.parse_args(argv)
    parallel = args.parallel or DEFAULT_PARALLEL
    return Supervisor(args.script, args.log_dir, args.job_id, args.trials, parallel, args.ports).run()


if __name__ == "__main__":
    sys.exit(main())
