"""sacct a moment behind the controller: a job whose own record still says PENDING while
its steps are listed has started (slurmdbd recorded the steps first)."""

from __future__ import annotations

import os

import pytest

from hpctf.executors.slurm.watch import ClusterWatcher, started_while_recorded_pending

HEADER = "JobID|State|ExitCode|NodeList|Start|End\n"
# As sacct printed it 4 s after a job started on another cluster of one slurmdbd
# (sacct --clusters mcb), while squeue already said RUNNING.
STEPS_BEFORE_THE_START = (
    HEADER + "4|PENDING|0:0|node1|2026-12-04T04:09:45|Unknown\n"
    "4.batch|RUNNING|0:0|node1|2026-12-04T04:09:45|Unknown\n"
    "4.0|RUNNING|0:0|node1|2026-12-04T04:09:46|Unknown\n"
)
# Requeued: the first attempt's steps come before the second attempt's record.
REQUEUED_AND_WAITING = (
    HEADER + "7|REQUEUED|0:0|node1|2026-12-04T04:00:00|2026-12-04T04:01:00\n"
    "7.batch|CANCELLED|0:15|node1|2026-12-04T04:00:00|2026-12-04T04:01:00\n"
    "7|PENDING|0:0|None assigned|Unknown|Unknown\n"
    "8|PENDING|0:0|None assigned|Unknown|Unknown\n"
)


def test_a_pending_record_with_steps_is_a_started_job():
    assert started_while_recorded_pending(STEPS_BEFORE_THE_START) == {"4"}


def test_steps_of_an_earlier_attempt_do_not_start_the_next_one():
    assert started_while_recorded_pending(REQUEUED_AND_WAITING) == set()
    # even listed late, under the waiting attempt's record (which has no start time)
    late = REQUEUED_AND_WAITING + "7.batch|CANCELLED|0:15|node1|2026-12-04T04:00:00|2026-12-04T04:01:00\n"
    assert started_while_recorded_pending(late) == set()


def test_array_elements_and_het_components_are_judged_each():
    out = HEADER + "9_1|PENDING|0:0|node1|x|Unknown\n9_1.batch|RUNNING|0:0|node1|x|Unknown\n"
    out += "9_[2-5]|PENDING|0:0|None assigned|Unknown|Unknown\n"
    out += (
        "10+0|PENDING|0:0|node1|x|Unknown\n10+0.batch|RUNNING|0:0|node1|x|Unknown\n10+1|PENDING|0:0|node2|x|Unknown\n"
    )
    assert started_while_recorded_pending(out) == {"9_1", "10+0"}


def _sacct_printing(tmp_path, monkeypatch, output: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "sacct.out").write_text(output)
    (bin_dir / "sacct").write_text(f"#!/bin/sh\ncat '{tmp_path / 'sacct.out'}'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.parametrize(
    "output, job_id, state",
    [(STEPS_BEFORE_THE_START, "4", "RUNNING"), (REQUEUED_AND_WAITING, "7", "PENDING")],
    ids=["steps-listed", "requeued-waiting"],
)
def test_the_watcher_reads_the_state_the_steps_imply(tmp_path, monkeypatch, output, job_id, state):
    _sacct_printing(tmp_path, monkeypatch, output)
    watcher = ClusterWatcher()
    watcher.watch(job_id, tmp_path)
    watcher.update()
    assert watcher.get_state(job_id, mode="cache") == state
