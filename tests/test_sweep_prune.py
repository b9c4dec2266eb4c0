"""Early stopping (issue 18): ``python -m hpctf.sweep.trial watch`` beside a training, as
an array element's batch script will run it: real processes (a ``sleep`` standing in for
the training), metrics files written while the watcher reads them, and a study whose
earlier trials were asked, reported and told through the same code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpctf.sweep import trial as element
from hpctf.sweep.config import SweepConfig
from hpctf.sweep.prune import MetricTail, marker_file, read_marker, signal_number

from .metricsruns import event_record

STEPS = range(6)
BAD = 3.0  # far worse than every completed trial at every step
ROUND_S = "0.1"


def good(i: int, step: int) -> float:
    """Completed trial i's val_loss at ``step``: 1/(step+1), a little worse for each i."""
    return 1 / (step + 1) + 0.01 * i


def make_sweep(tmp_path: Path, early_stop: str) -> Path:
    folder = tmp_path / "sweep"
    SweepConfig(params=("lr=loguniform(1e-4, 1e-1)",), metric="val_loss", early_stop=early_stop).write(folder)
    return folder


def log(run: Path, *lines: str) -> None:
    """Append to rank 0's metrics file, as hpctf.log_metric does (flushed at once)."""
    (run / "metrics").mkdir(parents=True, exist_ok=True)
    with open(run / "metrics" / "rank-0.jsonl", "a") as f:
        f.write("".join(lines))


def point(step: int, value: float, name: str = "val_loss") -> str:
    return json.dumps({"name": name, "step": step, "value": value, "time": time.time()}) + "\n"


def complete(folder: Path, tmp_path: Path, count: int) -> None:
    """Trials 0..count-1 asked, run to their end and told (tell reports every step)."""
    for i in range(count):
        element.ask(folder, i)
        run = tmp_path / f"run{i}"
        log(run, *(point(s, good(i, s)) + point(s, 0.1, "loss") for s in STEPS))
        assert element.tell(folder, i, run, 0) == f"trial {i}: val_loss={good(i, 5):.6g}"


def trials(folder: Path) -> list:
    return SweepConfig.read(folder).study(folder).trials()


def start_watch(folder: Path, index: int, run: Path, pid: int, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpctf.sweep.trial", "watch", str(folder), str(index), "--run-dir", str(run)]
        + ["--pid", str(pid), "--every", ROUND_S, *options],
        stderr=subprocess.PIPE,
        text=True,
    )


def until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def reported(folder: Path, index: int) -> dict:
    return trials(folder)[index].intermediate_values


def tell(folder: Path, index: int, run: Path, code: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.sweep.trial", "tell", str(folder), str(index), "--run-dir", str(run)]
        + ["--exit-code", str(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.strip()


def test_median_stops_a_bad_trial_with_its_signal_and_tell_records_it_pruned(tmp_path):
    folder = make_sweep(tmp_path, "median")
    complete(folder, tmp_path, 4)
    assert sorted(trials(folder)[3].intermediate_values) == list(STEPS)  # told complete with every step reported
    element.ask(folder, 4)
    run = tmp_path / "run4"
    training = subprocess.Popen(["sleep", "60"])
    watcher = start_watch(folder, 4, run, training.pid)
    try:
        log(run, point(0, 0.2, "loss"), point(0, BAD))
        until(lambda: reported(folder, 4) == {0: BAD})  # read while it runs; step 0: warm-up, never pruned
        line = point(1, BAD)
        log(run, point(1, 0.2, "loss"), line[:20])  # half a line: the writer is at it
        time.sleep(0.5)
        assert training.poll() is None and not marker_file(folder, 4).exists()
        log(run, line[20:])
        assert watcher.wait(timeout=60) == 0
        assert training.wait(timeout=10) == -signal.SIGTERM
    finally:
        training.kill()
        watcher.kill()
    said = watcher.stderr.read()
    assert said.startswith(
        "hpctf: trial 4 pruned at step 1: val_loss=3 is worse than the median of the completed trials at that "
        "step (0.515); sending SIGTERM to "
    )
    marker = read_marker(folder, 4)
    assert (marker["step"], marker["value"]) == (1, BAD) and abs(marker["time"] - time.time()) < 60
    assert tell(folder, 4, run, 128 + signal.SIGTERM) == "trial 4: pruned at step 1 (val_loss=3)"
    last = trials(folder)[4]
    assert (last.state.name, last.value, last.intermediate_values) == ("PRUNED", BAD, {0: BAD, 1: BAD})


def test_a_good_trial_runs_on_and_its_watcher_ends_with_it(tmp_path):
    folder = make_sweep(tmp_path, "median")
    complete(folder, tmp_path, 4)
    element.ask(folder, 4)
    run, stop = tmp_path / "run4", tmp_path / "stop"
    training = subprocess.Popen(["bash", "-c", f"until [ -e {stop} ]; do sleep 0.05; done"])
    watcher = start_watch(folder, 4, run, training.pid)
    try:
        for step in range(4):
            log(run, point(step, good(0, step) / 2))
            until(lambda step=step: step in reported(folder, 4))
        stop.touch()  # the training ends by itself: the watcher follows (its process is not waited for yet)
        assert watcher.wait(timeout=30) == 0
        assert training.wait(timeout=10) == 0
    finally:
        training.kill()
        watcher.kill()
    assert watcher.stderr.read() == "" and not marker_file(folder, 4).exists()
    log(run, point(4, 0.2), point(5, 0.1))  # logged after the watcher's last round: tell reports them
    assert tell(folder, 4, run, 0) == "trial 4: val_loss=0.1"
    last = trials(folder)[4]
    assert last.state.name == "COMPLETE" and sorted(last.intermediate_values) == list(STEPS)


@pytest.mark.parametrize("handles", [False, True], ids=["ignores-USR1", "checkpoints-on-USR1"])
def test_hyperband_sends_the_checkpoint_signal_first_then_term(tmp_path, handles):
    folder = make_sweep(tmp_path, "hyperband")
    complete(folder, tmp_path, 6)  # steps 0..5: max_resource 6, two brackets (rungs at steps 1 and 3)
    element.ask(folder, 6)
    run = tmp_path / "run6"
    on_usr1 = "lambda *_: sys.exit(0)" if handles else "signal.SIG_IGN"  # a training that checkpoints and exits 0
    code = f"import signal, sys, time; signal.signal(signal.SIGUSR1, {on_usr1}); print(flush=True); time.sleep(60)"
    training = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    training.stdout.readline()  # its handler is set
    watcher = start_watch(folder, 6, run, training.pid, "--signal", "USR1", "--grace", "1")
    try:
        for step in STEPS:
            log(run, point(step, BAD))
            time.sleep(0.2)
        assert watcher.wait(timeout=60) == 0
        assert training.wait(timeout=10) == (0 if handles else -signal.SIGTERM)
    finally:
        training.kill()
        watcher.kill()
    said = watcher.stderr.read().splitlines()
    step = read_marker(folder, 6)["step"]
    assert step in (1, 3)  # the first rung of the trial's bracket
    assert said[0].startswith(
        f"hpctf: trial 6 pruned at step {step}: val_loss=3 is not in the best 1/3 of its Hyperband bracket at that "
        f"step; sending SIGUSR1 to {training.pid}"
    )
    late = f"hpctf: trial 6: {training.pid} still runs 1s after SIGUSR1: sending SIGTERM"
    assert said[1:] == ([] if handles else [late])
    code = 0 if handles else 128 + signal.SIGTERM  # pruned whatever the exit code
    assert tell(folder, 6, run, code) == f"trial 6: pruned at step {step} (val_loss=3)"
    assert trials(folder)[6].state.name == "PRUNED"


def test_with_a_checkpoint_signal_to_the_batch_shell_the_script_s_term_ends_the_grace(tmp_path):
    """A requeue job's watcher signals the batch shell (``--pid "$$" --signal USR1``), which
    outlives the training and sends the watcher SIGTERM once it has ended: the watcher
    ends then, without waiting out the grace nor sending the shell SIGTERM (which would end
    the pruned element as failed, 143)."""
    folder = make_sweep(tmp_path, "median")
    complete(folder, tmp_path, 4)
    element.ask(folder, 4)
    run, usr1, term = tmp_path / "run4", tmp_path / "usr1", tmp_path / "term"
    code = (
        "import pathlib, signal, sys, time; "
        f"signal.signal(signal.SIGUSR1, lambda *_: pathlib.Path({str(usr1)!r}).touch()); "
        f"signal.signal(signal.SIGTERM, lambda *_: pathlib.Path({str(term)!r}).touch()); "
        "print(flush=True); time.sleep(60)"
    )
    shell = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    shell.stdout.readline()  # its handlers are set
    watcher = start_watch(folder, 4, run, shell.pid, "--signal", "USR1", "--grace", "30")
    try:
        log(run, point(0, BAD), point(1, BAD))
        until(usr1.exists)  # pruned: the shell has the checkpoint signal; the training stops
        time.sleep(0.5)
        watcher.send_signal(signal.SIGTERM)  # the training has ended: the script stops its watcher
        assert watcher.wait(timeout=5) == 0
    finally:
        shell.kill()
        watcher.kill()
    assert not term.exists()
    assert read_marker(folder, 4)["step"] == 1


def test_a_pruned_trial_s_next_attempt_is_stopped_at_once(tmp_path):
    folder = make_sweep(tmp_path, "median")
    element.ask(folder, 0)
    marker_file(folder, 0).write_text(json.dumps({"step": 2, "value": BAD, "time": 0}))  # as if requeued after it
    training = subprocess.Popen(["sleep", "60"])
    watcher = start_watch(folder, 0, tmp_path / "run0", training.pid)
    try:
        assert watcher.wait(timeout=60) == 0 and training.wait(timeout=10) == -signal.SIGTERM
    finally:
        training.kill()
    assert watcher.stderr.read().startswith("hpctf: trial 0 pruned at step 2: ")


@pytest.mark.parametrize("early_stop", ["none", "broken"])
def test_a_watcher_that_has_nothing_to_do_or_cannot_work_exits_0_and_leaves_the_training_alone(tmp_path, early_stop):
    folder = make_sweep(tmp_path, "none") if early_stop == "none" else tmp_path / "not-a-sweep"
    training = subprocess.Popen(["sleep", "60"])
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hpctf.sweep.trial", "watch", str(folder), "0", "--run-dir", str(tmp_path)]
            + ["--pid", str(training.pid)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and training.poll() is None
    finally:
        training.kill()
    if early_stop == "none":
        assert done.stderr == "" and not (folder / "trials").exists()
    else:
        assert done.stderr.startswith("hpctf: trial 0: early stopping is off for this trial: ")
        assert "not a sweep folder" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_bad_signal_name_is_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.sweep.trial", "watch", str(tmp_path), "0", "--run-dir", str(tmp_path)]
        + ["--pid", "1", "--signal", "NOPE"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--signal NOPE: not a signal name such as TERM or USR1" in done.stderr
    assert [signal_number(n) for n in ("TERM", "SIGUSR1", "usr1", "10")] == [
        signal.SIGTERM,
        signal.SIGUSR1,
        signal.SIGUSR1,
        signal.SIGUSR1,
    ]


def test_the_tail_reads_new_whole_lines_once_and_tensorboard_only_without_them(tmp_path):
    tail = MetricTail(tmp_path, "val_loss")
    assert tail.new_points() == []  # no files yet
    (tmp_path / "tensorboard").mkdir()
    events = tmp_path / "tensorboard" / "events.out.tfevents.1.host"
    events.write_bytes(event_record(0, "val_loss", 0.5))
    assert tail.new_points() == [(0, 0.5)]
    assert tail.new_points() == []  # the event files did not change: not read again
    events.write_bytes(event_record(0, "val_loss", 0.5) + event_record(1, "val_loss", 0.25))
    assert tail.new_points() == [(0, 0.5), (1, 0.25)]  # every point: the caller skips steps reported
    log(tmp_path, point(0, 0.9), '{"name": "val_loss", "step": 1, "value": NaN}\n', "damaged\n", point(2, 0.7)[:10])
    assert [(s, v == v) for s, v in tail.new_points()] == [(0, True), (1, False)]  # NaN kept; half a line waits
    log(tmp_path, point(2, 0.7)[10:])
    events.write_bytes(event_record(5, "val_loss", 0.1))
    assert tail.new_points() == [(2, 0.7)]  # hpctf's file has the metric now: TensorBoard is left alone
    (tmp_path / "metrics" / "rank-0.jsonl").write_text(point(0, 0.3))  # rewritten, shorter
    assert tail.new_points() == [(0, 0.3)]
