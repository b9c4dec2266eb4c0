"""The one way hpctf calls a scheduler command: an argv, a timeout, an answer.

A dead ``slurmctld`` makes ``sacct``, ``squeue``, ``sbatch`` ... hang rather than fail, so
every call has a timeout; a command that is not installed is an answer too.
"""

from __future__ import annotations

from typing import Any

# subprocess, imported on the first call: about 2 ms that rendering a script (which loads
# this module through the executors) never needs. Tests may set it to a stand-in.
subprocess: Any = None

MISSING = "missing"  # the command is not on PATH
TIMED_OUT = "timed out"  # no answer within the timeout


class Reply:
    """What a scheduler command answered. A plain class: a NamedTuple costs a class
    built with exec at import, on every hpctf command's start."""

    __slots__ = ("returncode", "stdout", "stderr", "failure")

    def __init__(self, returncode: int | None, stdout: str = "", stderr: str = "", failure: str | None = None):
        self.returncode = returncode  # None when the command did not run or did not answer
        self.stdout = stdout
        self.stderr = stderr
        self.failure = failure  # MISSING, TIMED_OUT or None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def call(argv: list[str] | tuple[str, ...], timeout: float, env: dict[str, str] | None = None) -> Reply:
    """Run ``argv`` and capture its output (``env``: its environment, else this process's).
    A missing command or a timeout is a :class:`Reply` with ``failure`` set; other errors
    starting it (``PermissionError``) raise."""
    global subprocess
    if subprocess is None:
        import subprocess
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        return Reply(None, failure=MISSING)
    except subprocess.TimeoutExpired:
        return Reply(None, failure=TIMED_OUT)
    return Reply(done.returncode, done.stdout, done.stderr)


def answer(argv: list[str] | tuple[str, ...], timeout: float) -> str | None:
    """A command's output, or None when it fails, hangs or cannot be started."""
    try:
        reply = call(argv, timeout)
    except OSError:
        return None
    return reply.stdout if reply.ok else None
