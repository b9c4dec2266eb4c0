"""hpctf.serve with a small stand-in server (Python's http.server, up in a fraction of a
second): every way the user stops it leaves nothing on the port, and its death is told."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hpctf.serve import free_port

# The server: http.server, which first leaves its process id in server.pid (a test kills
# it by that id should it outlive the test).
SERVER = (
    "import os, runpy; open('server.pid', 'w').write(str(os.getpid())); "
    "runpy.run_module('http.server', run_name='__main__')"
)

# A stand-in for `hpctf tensorboard`: serve() and its exit code, as the command does.
SERVE = f"""
import sys
from hpctf.serve import serve
port = int(sys.argv[1])
argv = [sys.executable, "-c", {SERVER!r}, str(port), "--bind", "127.0.0.1", "--directory", sys.argv[2]]
argv += sys.argv[3:]
code, problem = serve(argv, port, lambda line: print(line, flush=True), "the stand-in")
print(problem or "", file=sys.stderr)
sys.exit(code)
"""


def port_is_free(port: int) -> bool:
    """Nothing listens on the port: a connection is refused. (Binding would be refused for a
    while after a server that closed connections first, TCP's TIME_WAIT, with none there.)"""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start(tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    """The stand-in, once it printed 'ready'."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port), str(tmp_path), *extra],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("ready"):
            return process, port
    pytest.fail(f"never ready: {seen} {process.stderr.read()}")


def gone(port: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return port_is_free(port)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_stops_the_server_and_exits_0(tmp_path, signum):
    process, port = start(tmp_path)
    assert not port_is_free(port)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 0
    assert port_is_free(port)  # stopped before hpctf exited, not after


def test_the_server_goes_when_hpctf_is_killed_outright(tmp_path):
    process, port = start(tmp_path)
    server = int((tmp_path / "server.pid").read_text())
    os.kill(process.pid, signal.SIGKILL)  # no handler runs: PR_SET_PDEATHSIG is what stops it
    process.wait(timeout=30)
    try:
        assert gone(port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)  # left behind: the test failed, do not leave it running


def test_a_server_that_dies_is_told_with_its_last_lines(tmp_path):
    # http.server refuses an unknown option: it exits 2 before it listens.
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(port), str(tmp_path), "--no-such-option"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "ready" not in done.stdout
    assert f"the stand-in exited with code 2 on http://127.0.0.1:{port}/; its last lines:" in done.stderr
    assert "unrecognized arguments: --no-such-option" in done.stderr
