"""Commands run as child processes: start, exit status, signal forwarding, stop.

The one implementation for the bootstrap (one child: the task's command) and the local
``srun`` stand-in (one child per task, or ``mpirun``). Children are started with
``posix_spawn``: ``subprocess`` costs ~8 ms to import on every task's start.
"""

from __future__ import annotations

import os
import signal
import time

# The signals srun passes on to a step's tasks: stop, interrupt, and USR1/USR2 (a requeue
# job's checkpoint request, `scancel --signal`).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


def exit_status(wait_status: int) -> int:
    """A ``waitpid`` status as a shell reports it: the exit code, or 128+N if killed by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Child:
    """A command started as a child process, optionally with its own environment and
    its stdout/stderr appended to files."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str] | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
    ):
        actions = []
        if stdout or stderr:  # the child opens its log files itself: this process keeps no descriptor
            from .logs import LOG_FILE_FLAGS

            actions = [(os.POSIX_SPAWN_OPEN, fd, p, LOG_FILE_FLAGS, 0o644) for fd, p in ((1, stdout), (2, stderr)) if p]
        # Python ignores SIGPIPE and SIGXFSZ for itself; the child gets the defaults back.
        self.pid = os.posix_spawnp(
            command[0],
            command,
            os.environ if env is None else env,
            file_actions=actions,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
        self.returncode: int | None = None

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = exit_status(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status (128+N if killed by signal N), or None after ``timeout`` s."""
        if timeout is None and self.returncode is None:
            self.returncode = exit_status(os.waitpid(self.pid, 0)[1])
        deadline = time.monotonic() + (timeout or 0)
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.returncode

    def stop(self, grace_s: float) -> None:
        stop_all([self], grace_s)


def forward_signals(children: list[Child]) -> None:
    """Pass the signals srun passes on (:data:`FORWARDED_SIGNALS`) to ``children``.

    Slurm signals every process of a step, but ``scancel --signal`` to the batch step or
    a local ``kill`` may reach only the wrapper: forwarding makes both work.
    """

    def forward(signum, _frame):
        for child in children:
            child.send_signal(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)


def stop_all(children: list[Child], grace_s: float) -> None:
    """SIGTERM to every child still running; SIGKILL to those left after ``grace_s``."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        if child.wait(max(0.0, deadline - time.monotonic())) is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
