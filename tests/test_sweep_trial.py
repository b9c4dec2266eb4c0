"""``python -m hpctf.sweep.trial`` (issue 18): an array element's ask and tell, as the
element's batch script will run them, in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.errors import HpctfError
from hpctf.sweep.config import SweepConfig
from hpctf.sweep.trial import script_arguments


def trial(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hpctf.sweep.trial", *args], capture_output=True, timeout=120)
    assert (done.returncode == 0) == ok, done.stderr.decode()
    return done


@pytest.fixture
def sweep(tmp_path) -> Path:
    folder = tmp_path / "sweep"
    SweepConfig(params=("lr=loguniform(1e-4, 1e-1)", "--opt=choice('adam', 'two words')"), metric="val_loss").write(
        folder
    )
    return folder


def run_folder(tmp_path: Path, name: str, lines: list[dict]) -> Path:
    run = tmp_path / name
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "rank-0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run


def test_ask_prints_the_arguments_one_nul_ended_word_each_and_again_on_a_retry(sweep):
    words = trial("ask", str(sweep), "3").stdout.split(b"\0")
    assert words[-1] == b"" and len(words) == 5
    lr, opt = float(words[1]), words[3].decode()
    assert words[0] == b"--lr" and words[2] == b"--opt" and 1e-4 <= lr <= 1e-1 and opt in ("adam", "two words")
    assert trial("ask", str(sweep), "3").stdout.split(b"\0") == words  # a requeued element: the same trial


def test_tell_records_the_last_value_a_failure_and_a_missing_metric(sweep, tmp_path):
    for index in range(3):
        trial("ask", str(sweep), str(index))
    good = run_folder(tmp_path, "good", [{"name": "val_loss", "step": s, "value": v} for s, v in enumerate([0.9, 0.4])])
    said = trial("tell", str(sweep), "0", "--run-dir", str(good), "--exit-code", "0").stderr.decode()
    assert said.strip() == "trial 0: val_loss=0.4"
    said = trial("tell", str(sweep), "1", "--run-dir", str(good), "--exit-code", "137").stderr.decode()
    assert said.strip() == "trial 1: failed (exit code 137)"
    silent = run_folder(tmp_path, "silent", [{"name": "loss", "step": 0, "value": 0.5}])
    said = trial("tell", str(sweep), "2", "--run-dir", str(silent), "--exit-code", "0").stderr.decode()
    assert "trial 2: failed: the run logged no 'val_loss'" in said
    trials = SweepConfig.read(sweep).study(sweep).trials()
    assert [(t.state.name, t.value) for t in trials] == [("COMPLETE", 0.4), ("FAIL", None), ("FAIL", None)]


def test_a_folder_that_is_not_a_sweep_is_one_line(tmp_path):
    said = trial("ask", str(tmp_path), "0", ok=False).stderr.decode()
    assert (
        said.startswith(f"hpctf.sweep.trial: {tmp_path}: not a sweep folder (sweep.json:") and "Traceback" not in said
    )
    with pytest.raises(HpctfError, match="not a sweep folder"):
        SweepConfig.read(tmp_path)


def test_script_arguments_keep_given_dashes():
    assert script_arguments({"lr": 0.01, "--batch-size": 64, "-o": "adam"}) == [
        "--lr",
        "0.01",
        "--batch-size",
        "64",
        "-o",
        "adam",
    ]


def test_an_attempt_after_one_told_failed_gets_a_new_trial_with_the_same_parameters(sweep, tmp_path):
    """Slurm's own requeue (scontrol requeue, preemption) ends an attempt with SIGTERM: its
    EXIT trap tells the trial failed. The next attempt runs the same parameters again, as
    a trial that can still be told."""
    first = trial("ask", str(sweep), "0").stdout
    said = trial("tell", str(sweep), "0", "--run-dir", str(tmp_path), "--exit-code", "143").stderr.decode()
    assert said.strip() == "trial 0: failed (exit code 143)"
    assert trial("ask", str(sweep), "0").stdout == first  # the same words
    good = run_folder(tmp_path, "good", [{"name": "val_loss", "step": 0, "value": 0.3}])
    said = trial("tell", str(sweep), "0", "--run-dir", str(good), "--exit-code", "0").stderr.decode()
    assert said.strip() == "trial 0: val_loss=0.3"
    trials = SweepConfig.read(sweep).study(sweep).trials()
    assert [(t.state.name, t.value) for t in trials] == [("FAIL", None), ("COMPLETE", 0.3)]
    assert trials[0].params == trials[1].params
