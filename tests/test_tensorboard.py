"""``hpctf tensorboard``: runs' event folders served by a real TensorBoard, checked through
TensorBoard's own HTTP API; the command it runs, and its refusals."""

from __future__ import annotations

import json
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest
from click.testing import CliRunner

from hpctf import tensorboard as board
from hpctf.cli import cli
from hpctf.errors import HpctfError
from hpctf.serve import free_port

from .recorded import private_home, record_run

LOSS = [1.0, 0.5, 0.25]  # exact in float32, as TensorBoard keeps them
ACCURACY = [0.5, 0.75]

# Event files as a training writes them: tf.summary into $HPCTF_TENSORBOARD_DIR itself, and
# a train/ subfolder as Keras's TensorBoard callback makes.
WRITE_EVENTS = """
import sys
import tensorflow as tf

folder, loss, accuracy = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
for where, tag, values in ((folder, "loss", loss), (folder + "/train", "accuracy", accuracy)):
    writer = tf.summary.create_file_writer(where)
    with writer.as_default():
        for step, value in enumerate(values):
            tf.summary.scalar(tag, value, step=step)
    writer.close()
"""


def tensorboard(*args: str):
    return CliRunner().invoke(cli, ["tensorboard", *args])


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    return private_home(tmp_path, monkeypatch)


@pytest.fixture
def mnist(own_home):
    """Run 5150 'mnist', no event files yet."""
    return record_run(own_home, "5150", name="mnist")


def port_is_free(port: int) -> bool:
    """Nothing listens on the port: a connection is refused. (Binding would be refused for a
    while after a server that closed connections first, TCP's TIME_WAIT, with none there.)"""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def lines_of(process: subprocess.Popen) -> queue.Queue:
    """The process's output lines as they come (None at its end), read by a thread."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for(lines: queue.Queue, text: str, timeout_s: float = 180.0) -> list[str]:
    """Every line up to the first that contains ``text``; fails when output ends first."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, f"output ended before {text!r}: {seen}"
        seen.append(line)
        if text in line:
            return seen


def wait_until(check, timeout_s: float = 60.0):
    """``check()``'s first true value, asking every half second."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"not true within {timeout_s} s: {check.__doc__}")


@pytest.mark.tensorflow
def test_serves_a_runs_scalars_and_stops_on_ctrl_c(mnist):
    written = subprocess.run(
        [sys.executable, "-c", WRITE_EVENTS, str(mnist.tensorboard), repr(LOSS), repr(ACCURACY)],
        capture_output=True,
        text=True,
    )
    assert written.returncode == 0, written.stderr
    port = free_port()
    served = subprocess.Popen(
        [sys.executable, "-m", "hpctf.cli", "tensorboard", "5150", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = lines_of(served)
        before = wait_for(lines, "ready")
        url = f"http://127.0.0.1:{port}/"
        assert f"TensorBoard at {url} (starting)" in before
        assert any(line.startswith(f"from a laptop: ssh -L {port}:localhost:{port} ") for line in before)

        def both_runs():
            """TensorBoard lists both runs of job 5150"""
            runs = get_json(url + "data/runs")
            return runs if {"5150-mnist/.", "5150-mnist/train"} <= set(runs) else None

        wait_until(both_runs)
        tags = get_json(url + "data/plugin/scalars/tags")
        assert set(tags["5150-mnist/."]) == {"loss"} and set(tags["5150-mnist/train"]) == {"accuracy"}
        for run, tag, values in (("5150-mnist/.", "loss", LOSS), ("5150-mnist/train", "accuracy", ACCURACY)):
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            series = get_json(url + "data/plugin/scalars/scalars?" + query)
            assert [(step, value) for _, step, value in series] == list(enumerate(values))

        served.send_signal(signal.SIGINT)
        assert served.wait(timeout=30) == 0
        assert port_is_free(port)  # TensorBoard went with it
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()


@pytest.mark.tensorflow  # the training stack brings TensorBoard
def test_a_tensorboard_that_dies_early_is_shown(mnist):
    with socket.socket() as taken:  # the port is someone else's: TensorBoard cannot bind it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hpctf.cli", "tensorboard", "5150", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 1
    assert "ready" not in done.stdout
    assert "hpctf: TensorBoard exited with code" in done.stderr and "its last lines:" in done.stderr
    assert f"could not bind to port {port}" in done.stderr  # TensorBoard's own words


def logdir_spec(command: str) -> str:
    argv = shlex.split(command)
    return argv[argv.index("--logdir_spec") + 1]


def test_print_command_names_each_run_by_job_id_and_name(own_home):
    older = record_run(own_home, "7", name="warm: up, again")
    newer = record_run(own_home, "8", name="mnist")
    done = tensorboard("--print-command", "--port", "6123")
    assert done.exit_code == 0, done.output
    argv = shlex.split(done.stdout)
    assert argv[: len(board.find_tensorboard())] == board.find_tensorboard()
    assert logdir_spec(done.stdout) == f"8-mnist:{newer.tensorboard},7-warm-up-again:{older.tensorboard}"
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "6123"
    assert argv[argv.index("--reload_interval") + 1] == "30"
    # -n: the newest N only; JOB: that run only, whatever -n says.
    assert logdir_spec(tensorboard("--print-command", "-n", "1").stdout) == f"8-mnist:{newer.tensorboard}"
    assert logdir_spec(tensorboard("--print-command", "-n", "1", "7").stdout) == f"7-warm-up-again:{older.tensorboard}"


def test_a_run_without_event_files_is_served_with_a_note(mnist):
    done = tensorboard("5150", "--print-command")
    assert done.exit_code == 0
    assert done.stderr == (
        f"hpctf: job 5150 has no event files yet in {mnist.tensorboard}; "
        "TensorBoard shows them once the job writes some ($HPCTF_TENSORBOARD_DIR)\n"
    )
    (mnist.tensorboard / "events.out.tfevents.1.host").write_bytes(b"")
    assert tensorboard("5150", "--print-command").stderr == ""


def test_unknown_job_and_empty_history_are_refused(own_home):
    done = tensorboard()
    assert done.exit_code == 2 and "no runs in" in done.stderr and done.stdout == ""
    record_run(own_home, "1")
    done = tensorboard("404")
    assert done.exit_code == 2 and "no run with job id '404'" in done.stderr and done.stdout == ""


def test_without_tensorboard_one_line_says_how_to_install_it(mnist, tmp_path, monkeypatch):
    # This interpreter has no tensorboard beside it, cannot import it, and PATH has none.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(board.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert board.find_tensorboard() is None
    done = tensorboard("5150")
    assert done.exit_code == 1
    assert done.stderr == f"hpctf: {board.INSTALL_HINT}\n" and "pip install tensorboard" in done.stderr


def test_the_command_imports_neither_tensorboard_nor_tensorflow(mnist):
    code = (
        "import sys; from hpctf.cli import main; sys.argv = ['hpctf', 'tensorboard', '5150', '--print-command']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\nelse:\n    code = 0\n"
        "heavy = [m for m in ('tensorboard', 'tensorflow') if m in sys.modules]\n"
        "print('HEAVY', heavy, 'EXIT', code, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY [] EXIT 0" in done.stderr and "--logdir_spec" in done.stdout, done.stderr


def test_names_are_safe_for_logdir_spec_and_unique(own_home):
    assert board.safe_name("12-a:b,c/d e") == "12-a-b-c-d-e" and board.safe_name(":,") == "run"
    # A job id that came back (a rebuilt cluster starts its ids again), same job name.
    record = board.Registry(record_run(own_home, "3", name="x").registry).get("3")
    assert [run.name for run in board.board_runs([record, record])] == ["3-x", "3-x-2"]
    comma = board.BoardRun("9-y", "9", own_home / "a,b" / "tensorboard", 0)
    with pytest.raises(HpctfError, match="with ',' in it"):
        board.logdir_spec([comma])
