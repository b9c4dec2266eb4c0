"""Heterogeneous jobs (issue 19) followed as one job: sacct and squeue list only their
components (``ID+0``, ``ID+1``), never the id sbatch printed. The sacct and squeue
outputs below are the test cluster's (Slurm 22.05), ids aside."""

from __future__ import annotations

import time
import types

import pytest

from hpctf.executors.slurm.hetjobs import component_index, components, het_fields, het_job_id
from hpctf.executors.slurm.watch import ClusterWatcher, SlurmRun, count_attempts

HEAD = "JobID|State|ExitCode|NodeList|Start|End\n"

RUNNING = HEAD + (
    "5+0|RUNNING|0:0|node1|2026-12-03T20:53:17|Unknown\n"
    "5+0.batch|RUNNING|0:0|node1|2026-12-03T20:53:17|Unknown\n"
    "5+0.0|RUNNING|0:0|node1|2026-12-03T20:53:18|Unknown\n"
    "5+1|RUNNING|0:0|node[2-3]|2026-12-03T20:53:16|Unknown\n"
    "5+1.0|RUNNING|0:0|node[2-3]|2026-12-03T20:53:18|Unknown\n"
)
COMPLETED = HEAD + (
    "5+0|COMPLETED|0:0|node1|2026-12-03T20:53:17|2026-12-03T20:53:38\n"
    "5+0.batch|COMPLETED|0:0|node1|2026-12-03T20:53:17|2026-12-03T20:53:38\n"
    "5+0.0|COMPLETED|0:0|node1|2026-12-03T20:53:18|2026-12-03T20:53:38\n"
    "5+1|COMPLETED|0:0|node[2-3]|2026-12-03T20:53:17|2026-12-03T20:53:39\n"
    "5+1.0|COMPLETED|0:0|node[2-3]|2026-12-03T20:53:18|2026-12-03T20:53:39\n"
)
# A worker (het group 1) exited 5, srun returned 5 and so did the batch script: Slurm
# gives every component the batch script's end.
WORKER_FAILED = HEAD + (
    "5+0|FAILED|5:0|node1|2026-12-03T20:54:05|2026-12-03T20:54:06\n"
    "5+0.batch|FAILED|5:0|node1|2026-12-03T20:54:05|2026-12-03T20:54:06\n"
    "5+0.0|COMPLETED|0:0|node1|2026-12-03T20:54:06|2026-12-03T20:54:06\n"
    "5+1|FAILED|5:0|node[2-3]|2026-12-03T20:54:05|2026-12-03T20:54:06\n"
    "5+1.0|FAILED|5:0|node[2-3]|2026-12-03T20:54:06|2026-12-03T20:54:06\n"
)
CANCELLED = HEAD + (
    "5+0|CANCELLED by 0|0:0|node1|2026-12-03T20:54:02|2026-12-03T20:54:07\n"
    "5+0.batch|CANCELLED|0:15|node1|2026-12-03T20:54:02|2026-12-03T20:54:07\n"
    "5+0.0|CANCELLED|0:15|node1|2026-12-03T20:54:03|2026-12-03T20:54:07\n"
    "5+1|CANCELLED by 0|0:0|node[2-3]|2026-12-03T20:54:02|2026-12-03T20:54:07\n"
    "5+1.0|CANCELLED|0:15|node[2-3]|2026-12-03T20:54:03|2026-12-03T20:54:07\n"
)
# scontrol requeue while it ran: --duplicates lists each component's attempts, oldest first.
REQUEUED = HEAD + (
    "5+0|REQUEUED|0:0|node1|2026-12-03T20:54:29|2026-12-03T20:54:33\n"
    "5+0.batch|CANCELLED|0:15|node1|2026-12-03T20:54:29|2026-12-03T20:54:33\n"
    "5+0.0|CANCELLED|0:15|node1|2026-12-03T20:54:30|2026-12-03T20:54:33\n"
    "5+1|REQUEUED|0:0|node[2-3]|2026-12-03T20:54:29|2026-12-03T20:54:33\n"
    "5+1.0|CANCELLED|0:15|node[2-3]|2026-12-03T20:54:30|2026-12-03T20:54:33\n"
    "5+0|PENDING|0:0|None assigned|Unknown|Unknown\n"
    "5+1|PENDING|0:0|None assigned|Unknown|Unknown\n"
)
# The first second after the start: a line for the job's own id (PENDING, though its
# steps run), before the components are recorded.
JUST_STARTED = HEAD + (
    "5|PENDING|0:0|node1|2026-12-03T20:53:17|Unknown\n"
    "5.batch|RUNNING|0:0|node1|2026-12-03T20:53:17|Unknown\n"
    "5.0|RUNNING|0:0|node1|2026-12-03T20:53:18|Unknown\n"
)


def follow(monkeypatch, tmp_path, *replies: str) -> ClusterWatcher:
    """A watcher of job 5 that has refreshed once per sacct reply."""
    calls = []

    def answer(command):
        calls.append(command[0])
        return replies[len([c for c in calls if c == "sacct"]) - 1] if command[0] == "sacct" else None

    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", answer)
    watcher = ClusterWatcher()
    watcher.watch("5", tmp_path)
    for _ in replies:
        watcher._finished.clear()
        watcher.update()
    assert calls == ["sacct"] * len(replies)  # one call per refresh
    return watcher


def test_component_ids():
    assert het_job_id("5+1") == "5" and het_job_id("5") is None and het_job_id("5+1.0") is None
    assert het_job_id("5_1") is None
    assert component_index("5+1", "5") == 1 and component_index("55+1", "5") is None
    info = {"5+0": {}, "5+1": {}, "5+0.batch": {}, "55+0": {}, "5": {}}
    assert sorted(components(info, "5")) == [0, 1]


def test_submitit_reads_component_lines_as_they_are():
    """submitit's read_info keeps ``5+0`` and ``5+1`` under their own ids (no warning) and
    skips the steps: the job's own entry is hpctf's to make."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = ClusterWatcher().read_info(COMPLETED)
    assert sorted(info) == ["5+0", "5+1"]


def test_a_running_het_job(monkeypatch, tmp_path):
    watcher = follow(monkeypatch, tmp_path, RUNNING)
    info = watcher.get_info("5", mode="cache")
    assert info["State"] == "RUNNING" and info["NodeList"] == "node1,node[2-3]"
    assert (info["Start"], info["End"]) == ("2026-12-03T20:53:16", "Unknown")
    assert info["Restarts"] == "0"
    assert not watcher.is_done("5", mode="cache")
    assert watcher.get_info("5+1", mode="cache")["NodeList"] == "node[2-3]"  # components kept


def test_a_completed_het_job(monkeypatch, tmp_path):
    watcher = follow(monkeypatch, tmp_path, RUNNING, COMPLETED)
    info = watcher.get_info("5", mode="cache")
    assert (info["State"], info["ExitCode"]) == ("COMPLETED", "0:0")
    assert (info["Start"], info["End"]) == ("2026-12-03T20:53:17", "2026-12-03T20:53:39")
    assert watcher.is_done("5", mode="cache")
    assert watcher.get_info("5+0", mode="cache")["State"] == "COMPLETED"


def test_a_failed_worker_fails_the_job(monkeypatch, tmp_path):
    watcher = follow(monkeypatch, tmp_path, WORKER_FAILED)
    info = watcher.get_info("5", mode="cache")
    assert (info["State"], info["ExitCode"]) == ("FAILED", "5:0")
    assert watcher.is_done("5", mode="cache")


def test_a_cancelled_het_job(monkeypatch, tmp_path):
    watcher = follow(monkeypatch, tmp_path, RUNNING, CANCELLED)
    info = watcher.get_info("5", mode="cache")
    assert info["State"] == "CANCELLED by 0" and watcher.is_done("5", mode="cache")


def test_a_requeued_het_job_counts_its_attempts_once(monkeypatch, tmp_path):
    assert count_attempts(REQUEUED) == {"5+0": 2, "5+1": 2, "5": 2}
    watcher = follow(monkeypatch, tmp_path, RUNNING, REQUEUED)
    info = watcher.get_info("5", mode="cache")
    assert (info["State"], info["Restarts"], info["NodeList"]) == ("PENDING", "1", "None assigned")
    assert not watcher.is_done("5", mode="cache")


def test_the_components_win_over_the_jobs_own_early_line(monkeypatch, tmp_path):
    watcher = follow(monkeypatch, tmp_path, JUST_STARTED)
    assert watcher.get_info("5", mode="cache")["State"] == "PENDING"  # a plain job's line
    watcher = follow(monkeypatch, tmp_path, JUST_STARTED + RUNNING.split("\n", 1)[1])
    info = watcher.get_info("5", mode="cache")  # the components' nodes and start, not the early line's
    assert (info["State"], info["NodeList"], info["Start"]) == ("RUNNING", "node1,node[2-3]", "2026-12-03T20:53:16")


def fields(*rows: tuple[str, str]) -> dict[int, dict[str, str]]:
    return {i: {"State": s, "ExitCode": c, "NodeList": f"node{i + 1}"} for i, (s, c) in enumerate(rows)}


@pytest.mark.parametrize(
    "rows, state, code",
    [
        ((("RUNNING", "0:0"), ("CANCELLED by 0", "0:0")), "RUNNING", "0:0"),  # scancel of component 1's own id
        ((("COMPLETED", "0:0"), ("PENDING", "0:0")), "PENDING", "0:0"),
        ((("COMPLETED", "0:0"), ("FAILED", "5:0")), "FAILED", "5:0"),  # component 0's 0 gives way
        ((("FAILED", "3:0"), ("FAILED", "5:0")), "FAILED", "3:0"),  # the batch script's code
        ((("FAILED", "1:0"), ("NODE_FAIL", "0:0")), "NODE_FAIL", "1:0"),  # the cause wins
        ((("COMPLETED", "0:0"), ("OUT_OF_MEMORY", "0:125")), "OUT_OF_MEMORY", "0:125"),
        ((("TIMEOUT", "0:0"), ("CANCELLED by 0", "0:15")), "TIMEOUT", "0:15"),
        ((("COMPLETED", "0:0"), ("COMPLETED", "0:0")), "COMPLETED", "0:0"),
    ],
)
def test_the_jobs_state_from_its_components(rows, state, code):
    out = het_fields(fields(*rows))
    assert (out["State"], out["ExitCode"], out["NodeList"]) == (state, code, "node1,node2")


def test_no_component_no_fields():
    assert het_fields({}) is None


def reply(stdout: str, returncode: int = 0, stderr: str = ""):
    return types.SimpleNamespace(stdout=stdout, stderr=stderr, returncode=returncode, failure=None)


def test_without_accounting_squeue_lists_the_components(monkeypatch, tmp_path):
    """No sacct: squeue --jobs 5 answers ``5+0`` and ``5+1``; the job is followed under
    5, and once it has ended its exit-status file, ``5_exitcode`` (the batch step's
    SLURM_JOB_ID), says how; once squeue has forgotten it, the file alone."""
    replies = [
        reply("5+0|PENDING|\n5+1|PENDING|\n"),
        reply("5+0|RUNNING|node1\n5+1|RUNNING|node[2-3]\n"),
        reply("5+0|FAILED|node1\n5+1|FAILED|node[2-3]\n"),
        reply("", 1, "slurm_load_jobs error: Invalid job id specified"),
    ]
    commands = []

    def call(command, timeout):
        commands.append(command)
        return replies.pop(0)

    monkeypatch.setattr("hpctf.executors.slurm.watch.call", call)
    watcher = ClusterWatcher()
    watcher.accounting = False
    watcher.watch("5", tmp_path)
    seen = []
    for step in range(4):
        if step == 2:
            (tmp_path / "5_exitcode").write_text("5\n")
        watcher._finished.clear()
        watcher.update()
        info = watcher.get_info("5", mode="cache")
        seen.append((info["State"], info.get("ExitCode"), info["NodeList"]))
    assert seen == [
        ("PENDING", None, ""),
        ("RUNNING", None, "node1,node[2-3]"),
        ("FAILED", "5:0", "node1,node[2-3]"),
        ("FAILED", "5:0", ""),
    ]
    assert all(c[0] == "squeue" and c[-1] == "5" for c in commands)


def test_a_just_submitted_het_job_sacct_does_not_list_yet_is_asked_of_squeue(monkeypatch, tmp_path):
    def answer(command):
        return HEAD

    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", answer)
    monkeypatch.setattr(
        "hpctf.executors.slurm.watch.call", lambda command, timeout: reply("5+0|PENDING|\n5+1|PENDING|\n")
    )
    watcher = ClusterWatcher()
    watcher.watch("5", tmp_path)
    watcher.update()
    assert watcher.get_info("5", mode="cache")["State"] == "PENDING"


@pytest.mark.parametrize("state, code", [("COMPLETED", "0:0"), ("FAILED", "5:0")])
def test_a_het_jobs_early_end_waits_for_its_components(monkeypatch, tmp_path, state, code):
    """A job that ends within seconds of its start: sacct first lists nothing (squeue
    lists the components: it is a het job), then ends it on a line of its own id,
    component 0's, for a few seconds before the components are recorded. squeue's lines
    of the components tell the state and every node; the early line the exit code."""
    sacct = [HEAD, HEAD + f"5|{state}|{code}|node1|2026-12-03T20:57:44|2026-12-03T20:57:45\n"]
    squeue = [reply("5+0|PENDING|\n5+1|PENDING|\n"), reply(f"5+0|{state}|node1\n5+1|{state}|node[2-3]\n")]
    calls = []

    def answer(command):
        calls.append("sacct")
        return sacct.pop(0)

    def call(command, timeout):
        calls.append("squeue")
        return squeue.pop(0)

    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", answer)
    monkeypatch.setattr("hpctf.executors.slurm.watch.call", call)
    watcher = ClusterWatcher()
    watcher.watch("5", tmp_path)
    watcher.update()
    assert watcher.get_info("5", mode="cache")["State"] == "PENDING" and watcher.hets == {"5"}
    watcher.update()
    info = watcher.get_info("5", mode="cache")
    assert (info["State"], info["ExitCode"], info["NodeList"]) == (state, code, "node1,node[2-3]")
    assert info["End"] == "2026-12-03T20:57:45" and watcher.is_done("5", mode="cache")
    assert calls == ["sacct", "squeue", "sacct", "squeue"]


def test_an_unfinished_early_line_is_no_reason_to_ask_squeue(monkeypatch, tmp_path):
    watcher = follow(monkeypatch, tmp_path, RUNNING, JUST_STARTED, COMPLETED)  # one sacct call a refresh
    assert watcher.get_info("5", mode="cache")["State"] == "COMPLETED"


def test_why_a_het_job_waits(monkeypatch):
    from hpctf.executors.slurm.watch import queue_info

    out = "5+0|PENDING|Resources|N/A\n5+1|PENDING|Resources|N/A\n"
    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", lambda command: out)
    info = queue_info(["5"])
    assert (info["5"].state, info["5"].reason) == ("PENDING", "Resources")


# ---------------------------------------------------------------------------------------
# On the real cluster: partitions cpu (node1) and gpu (node[2-3])
# ---------------------------------------------------------------------------------------

HET_SCRIPT = """#!/bin/bash
#SBATCH --output={folder}/%j.out
#SBATCH --partition=cpu --nodes=1 --ntasks=2
#SBATCH hetjob
#SBATCH --partition=gpu --nodes=2 --ntasks=3
{body}
"""


def _het_job(slurm, folder, name: str, body: str) -> str:
    script = folder / f"{name}.sh"
    script.write_text(HET_SCRIPT.format(folder=folder, body=body))
    return slurm.sbatch(script)


def _follow(job: SlurmRun, timeout: float = 120, until=lambda job: job.done()) -> set[str]:
    seen = set()
    deadline = time.monotonic() + timeout
    while not until(job):
        seen.add(str(job.state))
        assert time.monotonic() < deadline, f"job {job.job_id} still {job.state} after {timeout}s"
        time.sleep(0.5)
    return seen


@pytest.mark.slurm
def test_het_jobs_on_the_cluster(slurm, shared_dir, monkeypatch):
    """Three heterogeneous jobs followed by the watcher under the id sbatch printed: one
    completes, one whose worker (het group 1, global rank 3) exits 5 fails with 5, one
    cancelled with `hpctf cancel`'s scancel ends every component."""
    from hpctf.executors.slurm import scancel

    for name in ("PATH", "SLURM_CONF"):  # sacct, squeue and scancel run in this process
        monkeypatch.setenv(name, slurm.env[name])
    monkeypatch.setattr(SlurmRun, "watcher", ClusterWatcher(delay_s=0))
    # Each runs longer than sacct's early line for its own id lasts, so the watcher sees
    # the components end (test_a_het_jobs_early_end_waits_for_its_components: shorter).
    ok = _het_job(slurm, shared_dir, "ok", "srun --het-group=0,1 sleep 8")
    bad = _het_job(
        slurm,
        shared_dir,
        "bad",
        "srun --het-group=0,1 bash -c 'sleep 8; exit $((SLURM_PROCID == 3 ? 5 : 0))'; exit $?",
    )
    long = _het_job(slurm, shared_dir, "long", "srun --het-group=0,1 sleep 300")
    try:
        jobs = {job_id: SlurmRun(folder=shared_dir, job_id=job_id, tasks=range(1)) for job_id in (ok, bad, long)}

        _follow(jobs[ok])
        assert (jobs[ok].state, jobs[ok].exit_code) == ("COMPLETED", 0)
        info = jobs[ok].info
        assert info["NodeList"] == "node1,node[2-3]" and info["Restarts"] == "0"
        assert f"{ok}+1" in SlurmRun.watcher._info_dict

        _follow(jobs[bad])
        assert (jobs[bad].state, jobs[bad].exit_code) == ("FAILED", 5)

        _follow(jobs[long], until=lambda job: job.state == "RUNNING")
        scancel(long)
        _follow(jobs[long])
        assert jobs[long].state == "CANCELLED"
        deadline = time.monotonic() + 30  # the controller lists them COMPLETING for a moment
        while True:
            listed = slurm.run("squeue", "-h", "--states=all", "--format=%i|%T", "--jobs", long).stdout.split()
            if "COMPLETING" not in str(listed) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted(listed) == [f"{long}+0|CANCELLED", f"{long}+1|CANCELLED"]
        components = {k: v["State"] for k, v in SlurmRun.watcher._info_dict.items() if k.startswith(f"{long}+")}
        assert components == {f"{long}+0": "CANCELLED by 0", f"{long}+1": "CANCELLED by 0"}
    finally:  # a failed assertion leaves none running
        slurm.run("scancel", ok, bad, long, check=False)
