"""A job Slurm requeued after one of its nodes died is reported as such (which node, why,
which attempt): sacct's records, the note kept in the log folder, status and --json.
The real node death is in tests/test_faults.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hpctf.executors.slurm import record_requeues
from hpctf.executors.slurm.watch import count_attempts, last_requeues
from hpctf.exits import requeues
from hpctf.registry import RunRecord
from hpctf.runs import restarts_text, state_detail, status_dict, status_rows

from .recorded import slurm_record

# As sacct --duplicates printed it on the test cluster after `cluster.sh kill-node node2`.
NODE_FAIL_THEN_PENDING = (
    "JobID|State|ExitCode|NodeList|Start|End\n"
    "700002|NODE_FAIL|0:0|node[1-2]|2026-12-03T23:01:00|2026-12-03T23:01:40\n"
    "700002.batch|CANCELLED|0:15|node1|2026-12-03T23:01:00|2026-12-03T23:01:41\n"
    "700002|PENDING|0:0|None assigned|Unknown|Unknown\n"
    "700003|NODE_FAIL|0:0|node[1-2]|2026-12-03T23:05:00|2026-12-03T23:05:40\n"
)


def test_a_node_fail_record_followed_by_another_is_a_requeue():
    assert count_attempts(NODE_FAIL_THEN_PENDING) == {"700002": 2, "700003": 1}
    assert last_requeues(NODE_FAIL_THEN_PENDING) == {"700002": ("NODE_FAIL", "node[1-2]")}
    twice = NODE_FAIL_THEN_PENDING.replace(
        "700002|PENDING|0:0|None assigned|Unknown|Unknown\n",
        "700002|REQUEUED|0:0|node[1-2]|2026-12-03T23:03:00|2026-12-03T23:03:30\n"
        "700002|RUNNING|0:0|node[2-3]|2026-12-03T23:04:00|Unknown\n",
    )
    assert count_attempts(twice)["700002"] == 3
    assert last_requeues(twice) == {"700002": ("REQUEUED", "node[1-2]")}  # the latest requeue: scontrol's


def _sinfo(tmp_path, monkeypatch, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sinfo.calls"
    (bin_dir / "sinfo").write_text(f'#!/bin/bash\necho "$@" >>{calls}\n{body}\n')
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def _run(tmp_path, job_id="700002", state="PENDING", restarts=1, requeue=False) -> RunRecord:
    logs = tmp_path / f"logs{job_id}"
    logs.mkdir(exist_ok=True)
    return slurm_record(
        tmp_path,
        logs,
        job_id=job_id,
        state=state,
        nodes="node[1-2]",
        restarts=restarts,
        spec=json.dumps({"requeue": requeue}),
    )


def test_a_requeue_after_a_node_failure_is_kept_once_and_shown(tmp_path, monkeypatch):
    calls = _sinfo(tmp_path, monkeypatch, "printf '%s\\n' 'node1|idle|none' 'node2|down*|Not responding'")
    run = _run(tmp_path)
    info = {"700002": {"State": "PENDING", "RequeuedAfter": "NODE_FAIL", "RequeuedNodes": "node[1-2]"}}
    record_requeues([run], info)
    record_requeues([run], info)  # the next refresh: already kept, sinfo not asked again
    assert len(calls.read_text().splitlines()) == 1
    entry = {"attempt": 2, "after": "NODE_FAIL", "nodes": [["node2", "down*: Not responding"]], "unknown": None}
    assert requeues(run.log_dir, run.job_id) == {2: entry}
    assert state_detail(run) == "requeued after node node2 failed; attempt 2"
    assert dict(status_rows(run))["state"] == "PENDING (requeued after node node2 failed; attempt 2)"
    shown = status_dict(run)
    assert (shown["state"], shown["requeued"], shown["state_detail"]) == (
        "PENDING",
        entry,
        "requeued after node node2 failed; attempt 2",
    )
    # Once it runs to its end, the restarts row keeps why.
    run.state = "COMPLETED"
    assert state_detail(run) is None
    assert restarts_text(run) == "1 (2 attempts; requeued after node node2 failed before attempt 2)"


def test_no_note_for_a_requeue_by_scontrol_or_a_first_attempt(tmp_path, monkeypatch):
    calls = _sinfo(tmp_path, monkeypatch, "exit 0")
    scontrol = _run(tmp_path, job_id="5")
    first = _run(tmp_path, job_id="6", restarts=0)
    record_requeues(
        [scontrol, first],
        {"5": {"RequeuedAfter": "REQUEUED", "RequeuedNodes": "node1"}, "6": {"State": "RUNNING"}},
    )
    assert not calls.exists()
    assert state_detail(scontrol) is None and status_dict(first)["requeued"] is None


def test_the_nodes_are_unknown_when_sinfo_fails(tmp_path, monkeypatch):
    _sinfo(tmp_path, monkeypatch, "echo 'Unable to contact slurm controller' >&2; exit 1")
    run = _run(tmp_path)
    record_requeues([run], {"700002": {"RequeuedAfter": "NODE_FAIL", "RequeuedNodes": "node[1-2]"}})
    assert requeues(run.log_dir, run.job_id)[2]["unknown"] == "sinfo did not answer when the requeue was seen"
    assert state_detail(run) == "requeued after a node failed; attempt 2"


def _standins(tmp_path, monkeypatch, squeue: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sacct = NODE_FAIL_THEN_PENDING.splitlines()[:2]  # the header and the NODE_FAIL record only
    (bin_dir / "sacct").write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(sacct) + "\nEOF\n")
    (bin_dir / "squeue").write_text(f"#!/bin/sh\n{squeue}\n")
    for name in ("sacct", "squeue"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def _watch(tmp_path):
    from hpctf.executors.slurm.watch import ClusterWatcher

    watcher = ClusterWatcher()
    watcher.watch("700002", tmp_path)
    watcher.update()
    return watcher


def test_node_fail_before_accounting_has_the_requeue_asks_squeue(tmp_path, monkeypatch):
    """sacct has the NODE_FAIL record, not yet the PENDING one; the controller has queued
    the job again: it is PENDING, in its second attempt, not over."""
    _standins(tmp_path, monkeypatch, "echo '700002|PENDING'")
    watcher = _watch(tmp_path)
    info = watcher._info_dict["700002"]
    assert (info["State"], info["Restarts"], info["RequeuedAfter"], info["RequeuedNodes"]) == (
        "PENDING",
        "1",
        "NODE_FAIL",
        "node[1-2]",
    )
    assert "700002" not in watcher._finished


def test_node_fail_that_squeue_confirms_or_forgot_is_the_end(tmp_path, monkeypatch):
    _standins(tmp_path, monkeypatch, "echo '700002|NODE_FAIL'")
    watcher = _watch(tmp_path)
    assert watcher._info_dict["700002"]["State"] == "NODE_FAIL" and "700002" in watcher._finished


def test_node_fail_is_not_taken_as_the_end_while_squeue_does_not_answer(tmp_path, monkeypatch):
    _standins(tmp_path, monkeypatch, "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1")
    watcher = _watch(tmp_path)
    assert "700002" not in watcher._info_dict and "700002" not in watcher._finished


def test_the_requeues_file_is_owner_only_under_umask_022(tmp_path, monkeypatch):
    import stat

    _sinfo(tmp_path, monkeypatch, "printf '%s\\n' 'node2|down*|Not responding'")
    run = _run(tmp_path)
    old = os.umask(0o022)
    try:
        record_requeues([run], {"700002": {"RequeuedAfter": "NODE_FAIL", "RequeuedNodes": "node2"}})
    finally:
        os.umask(old)
    kept = Path(run.log_dir) / "700002_requeues"
    assert list(requeues(run.log_dir, run.job_id)) == [2]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
