"""Tracking: the state enum, and jobs followed to the end on a cluster without accounting
(where submitit alone waits forever, submitit#1720)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.states import JobState
from hpctf.exits import parse_exit_code

PROGRAMS = Path(__file__).resolve().parent / "programs"


@pytest.mark.parametrize(
    "word, state",
    [
        ("COMPLETED", JobState.COMPLETED), ("CANCELLED by 0", JobState.CANCELLED), ("CA", JobState.CANCELLED),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY), ("OUT_OF_ME+", JobState.OUT_OF_MEMORY), ("NODE_FAIL", JobState.NODE_FAIL),
        ("PD", JobState.PENDING), ("R", JobState.RUNNING), ("TIMEOUT", JobState.TIMEOUT), ("PREEMPTED", JobState.PREEMPTED),
        ("REQUEUED", JobState.REQUEUED), ("", JobState.UNKNOWN), (None, JobState.UNKNOWN), ("WEIRD", JobState.UNKNOWN),
    ],
)
def test_slurm_words_map_to_one_enum(word, state):
    assert JobState.from_slurm(word) is state


def test_finished_states():
    assert {s for s in JobState if s.finished} == {
        JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.NODE_FAIL,
        JobState.OUT_OF_MEMORY, JobState.BOOT_FAIL, JobState.DEADLINE, JobState.REVOKED, JobState.LOST,
    }
    assert JobState.COMPLETED == "COMPLETED"  # submitit compares strings


def test_a_lost_job_is_finished_so_waiting_ends():
    assert JobState.from_slurm("LOST") is JobState.LOST and JobState.LOST.finished


@pytest.mark.parametrize("text, code", [("0:0", 0), ("3:0", 3), ("0:15", 143), ("1:9", 1), ("", None), ("x", None)])
def test_exit_codes(text, code):
    assert parse_exit_code(text) == code


@pytest.mark.slurm
def test_tracking_without_accounting(slurm_without_accounting, tmp_path):
    cluster = slurm_without_accounting
    assert cluster.run("sacct", "-j", "1", check=False).returncode != 0, "sacct should fail on this cluster"
    src = tmp_path / "project"
    src.mkdir()
    for name in ("hello.py", "fail.py", "ticker.py"):
        shutil.copy(PROGRAMS / name, src / name)
    code = f"""
import json, hpctf
from hpctf.tracking import SlurmRun
ok = hpctf.submit(hpctf.TensorFlow(source_directory={str(src)!r}, entry_script="hello.py"))
bad = hpctf.submit(hpctf.TensorFlow(source_directory={str(src)!r}, entry_script="fail.py", arguments=["3"]))
slow = hpctf.submit(hpctf.TensorFlow(source_directory={str(src)!r}, entry_script="ticker.py", arguments=["3", "1"]))
seen = set()
while not slow.done():
    seen.add(str(slow.state))
print(json.dumps({{
    "ok": [ok.result(), str(ok.state)], "bad": [bad.result(), str(bad.state)], "slow": [slow.result(), str(slow.state)],
    "seen": sorted(seen), "accounting": SlurmRun.watcher.accounting, "stdout": ok.stdout(),
}}))
"""
    env = {**cluster.env, "HPCTF_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["ok"] == [0, "COMPLETED"] and out["bad"] == [3, "FAILED"] and out["slow"] == [0, "COMPLETED"]
    assert "RUNNING" in out["seen"] and out["accounting"] is False
    assert "PROBE" in out["stdout"]

    cli = Path(sys.executable).with_name("hpctf")
    listing = subprocess.run([str(cli), "ls", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert [(r["state"], r["exit_code"]) for r in json.loads(listing.stdout)] == [("COMPLETED", 0), ("FAILED", 3), ("COMPLETED", 0)]
