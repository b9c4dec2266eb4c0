"""Following a local run from any process: state, wait, logs, cancel, exit code.

A local run's state lives in its run folder: the session id of its job script
(``local.pid``; a sweep's: its array supervisor, :mod:`hpctf.executors.local.array`), the
exit-status files its trap and tasks write, and a cancel marker.
"""

from __future__ import annotations

import os
import signal
import time

from submitit.core import core

from ...exits import ExitCodeResults, job_exit_code
from ...private import write_file
from ...runfolder import RunFolder
from ...states import JobState
from .launch import CANCELLED_FILE, PID_FILE

STOP_GRACE_S = 10.0


def session_members(sid: int) -> list[int]:
    """Every live process of session ``sid`` (the job script and all it started)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # Bytes: a process name need not be UTF-8 (the kernel also cuts names at 15
            # bytes, in the middle of a character if need be).
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != b"Z":
            members.append(int(entry))
    return members


class LocalRun(ExitCodeResults, RunFolder, core.Job):
    """A submitit-style handle for a local run: state, wait, logs, cancel, exit code."""

    def _register_in_watcher(self) -> None:  # no scheduler to ask
        pass

    @property
    def _sid(self) -> int | None:
        try:
            return int((self.run_dir / PID_FILE).read_text())
        except (OSError, ValueError):
            return None

    @property
    def exit_code(self) -> int | None:
        return job_exit_code(self.paths.folder, self.job_id)

    @property
    def state(self) -> JobState:  # type: ignore[override]
        cancelled = (self.run_dir / CANCELLED_FILE).exists()
        code = self.exit_code
        alive = self._sid is not None and bool(session_members(self._sid))
        if alive and (code is None or cancelled):
            return JobState.RUNNING
        if cancelled:
            return JobState.CANCELLED
        if code is None:
            return JobState.FAILED  # killed without its trap running (kill -9, reboot)
        return JobState.COMPLETED if code == 0 else JobState.FAILED

    def done(self, force_check: bool = False) -> bool:
        return self.state.finished

    def wait(self) -> None:
        while not self.done():
            time.sleep(0.2)

    def cancel(self, check: bool = True) -> None:
        """Stop every process of the run: SIGTERM to the session, SIGKILL after a grace."""
        sid = self._sid
        if self.exit_code is not None and (sid is None or not session_members(sid)):
            return  # already over: nothing to stop, and its state stays what it was
        write_file(self.run_dir / CANCELLED_FILE, f"{time.time()}\n")
        if sid is None:
            return
        for signum, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            for pid in session_members(sid):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while session_members(sid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not session_members(sid):
                return

    def __repr__(self) -> str:
        return f"LocalRun<job_id={self.job_id}, folder={self.paths.folder}>"
