"""Tracking: the state enum, and jobs followed to the end on a cluster without accounting
(where submitit alone waits forever, submitit#1720)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.exits import parse_exit_code
from hpctf.states import JobState

PROGRAMS = Path(__file__).resolve().parent / "programs"


@pytest.mark.parametrize(
    "word, state",
    [
        ("COMPLETED", JobState.COMPLETED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CA", JobState.CANCELLED),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("OUT_OF_ME+", JobState.OUT_OF_MEMORY),
        ("NODE_FAIL", JobState.NODE_FAIL),
        ("PD", JobState.PENDING),
        ("R", JobState.RUNNING),
        ("TIMEOUT", JobState.TIMEOUT),
        ("PREEMPTED", JobState.PREEMPTED),
        ("REQUEUED", JobState.REQUEUED),
        ("", JobState.UNKNOWN),
        (None, JobState.UNKNOWN),
        ("WEIRD", JobState.UNKNOWN),
    ],
)
def test_slurm_words_map_to_one_enum(word, state):
    assert JobState.from_slurm(word) is state


def test_finished_states():
    assert {s for s in JobState if s.finished} == {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.NODE_FAIL,
        JobState.OUT_OF_MEMORY,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
        JobState.REVOKED,
        JobState.LOST,
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
from hpctf.executors.slurm.watch import SlurmRun
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
    assert [(r["state"], r["exit_code"]) for r in json.loads(listing.stdout)] == [
        ("COMPLETED", 0),
        ("FAILED", 3),
        ("COMPLETED", 0),
    ]


# ---------------------------------------------------------------------------------------
# Runs that end NODE_FAIL: which nodes Slurm declared dead (logic; tests/test_faults.py
# kills a real node)
# ---------------------------------------------------------------------------------------

SINFO_STANDIN = """#!/bin/bash
echo "$@" >>{calls}
{body}
"""


def _sinfo_standin(tmp_path, monkeypatch, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sinfo.calls"
    (bin_dir / "sinfo").write_text(SINFO_STANDIN.format(calls=calls, body=body))
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def _node_fail_runs(tmp_path, nodelists):
    from hpctf.registry import RunRecord

    runs = []
    for i, nodes in enumerate(nodelists):
        logs = tmp_path / f"logs{i}"
        logs.mkdir()
        runs.append(
            RunRecord(
                job_id=str(100 + i),
                target="slurm",
                name="t",
                backend="mpi",
                shape="2x1",
                run_dir=str(tmp_path),
                log_dir=str(logs),
                command="",
                submitted=0.0,
                state="NODE_FAIL",
                nodes=nodes,
            )
        )
    return runs


def test_node_failures_of_several_runs_cost_one_sinfo_and_name_each_runs_own_nodes(tmp_path, monkeypatch):
    from hpctf.executors.slurm import record_node_failures
    from hpctf.exits import failed_nodes

    calls = _sinfo_standin(
        tmp_path,
        monkeypatch,
        body=(
            "printf '%s\\n' 'node1|mixed|none' 'node2|down*|Not responding' 'node3|idle|none' 'node4|drained|bad disk'"
        ),
    )
    runs = _node_fail_runs(tmp_path, ["node[1-2]", "node[3-4]", "node1"])
    record_node_failures(runs)
    assert len(calls.read_text().splitlines()) == 1
    assert "--nodes node[1-2],node[3-4],node1" in calls.read_text()
    assert [failed_nodes(r.log_dir, r.job_id) for r in runs] == [
        {"nodes": [["node2", "down*: Not responding"]], "unknown": None},
        {"nodes": [["node4", "drained: bad disk"]], "unknown": None},
        {"nodes": [], "unknown": "the nodes were back in service before hpctf asked"},
    ]


def test_a_node_failure_is_unknown_not_back_when_sinfo_fails(tmp_path, monkeypatch):
    from hpctf.executors.slurm import record_node_failures
    from hpctf.exits import failed_nodes

    _sinfo_standin(tmp_path, monkeypatch, body="echo 'slurm_load_node: Unable to contact slurm controller' >&2; exit 1")
    [run] = _node_fail_runs(tmp_path, ["node[1-2]"])
    record_node_failures([run])
    assert failed_nodes(run.log_dir, run.job_id) == {"nodes": [], "unknown": "sinfo did not answer when the run ended"}
