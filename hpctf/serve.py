"""A web server (TensorBoard, for ``hpctf tensorboard``) run as a child process for a user
at a terminal, usually on a cluster's login node: bound to 127.0.0.1 on a free port,
reached from a laptop through an ssh tunnel, ready once it answers HTTP, stopped cleanly
on Ctrl-C, and its last lines shown when it dies.

The child gets a session of its own, so the terminal's Ctrl-C and hang-up reach hpctf
only, which then stops it (SIGTERM to its process group, SIGKILL after a grace): one
shutdown, done in one place. Where hpctf itself is killed outright, Linux sends the child
SIGTERM too (``PR_SET_PDEATHSIG``): no server is left holding the port.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator

LOCALHOST = "127.0.0.1"  # never the cluster's network: other users of the login node share it
START_TIMEOUT_S = 180.0  # TensorBoard imports TensorFlow where it is installed: slow on a busy login node
POLL_S = 0.25
STOP_GRACE_S = 5.0  # Ctrl-C is ignored meanwhile: short
TAIL_LINES = 15
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, the ssh session gone


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def tunnel_hint(port: int) -> str:
    """The command that brings the port to a laptop: this machine's name and the user's."""
    return f"ssh -L {port}:localhost:{port} {getpass.getuser()}@{host_name()}"


def host_name() -> str:
    """This machine's full name; its short name where the resolver calls it 'localhost'
    (/etc/hosts listing the host name on the loopback line), which a laptop cannot use."""
    fqdn = socket.getfqdn()
    return socket.gethostname() if fqdn.startswith("localhost") else fqdn


class Stopped(Exception):
    """A stop signal arrived (:data:`STOP_SIGNALS`)."""


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Within: a stop signal raises :class:`Stopped`, in the main thread, wherever it waits."""

    def stop(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function that asks Linux to SIGTERM the child when hpctf dies; None elsewhere.
    libc is loaded here, before the fork: the child may not import or load anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class Server:
    """The child server: its output goes to an unnamed temporary file (never a pipe, which
    fills up when nobody reads it and stalls the server), read back when it dies."""

    def __init__(self, argv: list[str], port: int, probe: str = "/", env: dict[str, str] | None = None):
        self.port = port
        self.url = f"http://{LOCALHOST}:{port}/"
        self._probe = self.url + probe.lstrip("/")
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )

    def answers(self) -> bool:
        """Whether the probe page answers 200: some other server on the port (the child then
        fails to bind) answers too, but not with the child's page."""
        try:
            with urllib.request.urlopen(self._probe, timeout=2) as answer:
                return answer.status == 200
        except (OSError, ValueError):  # refused, not yet listening, an HTTP error status
            return False

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> bool:
        """Wait until it answers; False when it exits first or takes longer than ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            if self.answers():
                return True
            time.sleep(POLL_S)
        return False

    def tail(self, lines: int = TAIL_LINES) -> str:
        """Its last ``lines`` lines of output."""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - 16384))
        return "\n".join(self._log.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM to its process group, SIGKILL after :data:`STOP_GRACE_S`; its exit code."""
        for signum, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait_s)
        return self.process.wait()


def serve(
    argv: list[str],
    port: int,
    say: Callable[[str], None],
    label: str = "the server",
    probe: str = "/",
    env: dict[str, str] | None = None,
) -> tuple[int, str | None]:
    """Run the server ``argv`` (a :class:`Server`, ``label`` in messages) until a stop signal
    (exit 0) or until it dies (exit 1 and what it said last); ``say`` tells the user where it
    is, how to reach it and when it is ready."""
    child = None
    with stopped_by_signals():
        try:
            child = Server(argv, port, probe, env)
            say(f"{label} at {child.url} (starting)")
            say(f"from a laptop: {tunnel_hint(port)}  then open http://localhost:{port}/")
            if not child.wait_ready():
                code = child.process.poll()
                why = f"exited with code {code}" if code is not None else f"did not answer in {START_TIMEOUT_S:.0f} s"
                child.stop()
                return 1, f"{label} {why} on {child.url}; its last lines:\n{child.tail()}"
            say("ready (Ctrl-C stops it)")
            code = child.process.wait()
            return 1, f"{label} exited with code {code}; its last lines:\n{child.tail()}"
        except OSError as err:  # the program is not there after all, or cannot run
            return 1, f"cannot start {label}: {err}"
        except Stopped:
            if child is not None:
                with _ignoring(STOP_SIGNALS):
                    child.stop()
            return 0, None


@contextlib.contextmanager
def _ignoring(signals: tuple[int, ...]) -> Iterator[None]:
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
