"""A job array followed as one job (issue 18): its state from its elements', as sacct and
squeue list them (an element a line, the waiting ones as a range)."""

from __future__ import annotations

import pytest

from hpctf.executors.slurm.arrays import array_fields, element_index, elements
from hpctf.executors.slurm.watch import ClusterWatcher, expand_array_ids


def fields(*states: str) -> dict[int, dict[str, str]]:
    return {i: {"State": s, "Start": f"2026-12-03T10:0{i}:00", "End": "Unknown"} for i, s in enumerate(states)}


@pytest.mark.parametrize(
    "states, size, state, code",
    [
        (("PENDING", "PENDING"), 2, "PENDING", "0:0"),
        (("RUNNING", "PENDING"), 2, "RUNNING", "0:0"),
        (("COMPLETED", "PENDING"), 2, "RUNNING", "0:0"),  # some ended, others wait: under way
        (("COMPLETED",), 3, "RUNNING", "0:0"),  # elements sacct does not list yet wait
        (("COMPLETED", "COMPLETED"), 2, "COMPLETED", "0:0"),
        (("COMPLETED", "FAILED"), 2, "COMPLETED", "1:0"),  # a failed trial is one trial
        (("FAILED", "TIMEOUT"), 2, "FAILED", "1:0"),
        (("COMPLETED", "CANCELLED by 0"), 2, "CANCELLED", "0:0"),
    ],
)
def test_the_array_state_from_its_elements(states, size, state, code):
    out = array_fields(fields(*states), size)
    assert (out["State"], out["ExitCode"]) == (state, code)
    assert out["Start"] == "2026-12-03T10:00:00"


def test_no_element_no_state():
    assert array_fields({}, 4) is None


def test_elements_of_one_array_only():
    info = {"7_0": {"State": "RUNNING"}, "7_12": {"State": "PENDING"}, "77_1": {}, "7": {}, "7_0.batch": {}}
    assert sorted(elements(info, "7")) == [0, 12]
    assert element_index("7_3", "7") == 3 and element_index("77_3", "7") is None


def test_waiting_ranges_expand():
    assert expand_array_ids("7_[3-5%2]") == ["7_3", "7_4", "7_5"]
    assert expand_array_ids("7_[1,4-5]") == ["7_1", "7_4", "7_5"]
    assert expand_array_ids("7_2") == ["7_2"]


def test_one_sacct_call_tells_the_array_and_every_element(monkeypatch, tmp_path):
    """A 1,000-element array: one sacct, which lists the running elements one a line and
    the waiting ones as one range; no squeue call for the array itself."""
    calls = []
    lines = ["JobID|State|ExitCode|NodeList|Start|End"]
    lines += [f"9_{i}|COMPLETED|0:0|node1|2026-12-03T10:00:00|2026-12-03T10:01:00" for i in range(3)]
    lines += ["9_3|RUNNING|0:0|node2|2026-12-03T10:02:00|Unknown", "9_[4-999%4]|PENDING|0:0|None assigned|Unknown|"]

    def answer(command):
        calls.append(command[0])
        return "\n".join(lines) + "\n" if command[0] == "sacct" else None

    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", answer)
    watcher = ClusterWatcher()
    watcher.watch("9", tmp_path, array_size=1000)
    watcher.update()
    assert calls == ["sacct"]
    assert watcher.get_info("9", mode="cache")["State"] == "RUNNING"
    assert watcher.get_info("9_999", mode="cache")["State"] == "PENDING"
    assert len(elements(watcher._info_dict, "9")) == 1000


def test_the_arrays_own_line_stands_for_the_elements_not_listed_yet(monkeypatch, tmp_path):
    """Right after `scancel` of an array with waiting elements, sacct lists the running
    elements and one line for the array's own id, standing for the waiting ones."""
    replies = [
        "JobID|State|ExitCode|NodeList|Start|End\n9|PENDING|0:0|None assigned|Unknown|Unknown\n",
        "JobID|State|ExitCode|NodeList|Start|End\n9|CANCELLED by 0|0:0|None assigned|2026-12-03T10:00:00|"
        "2026-12-03T10:00:00\n9_0|CANCELLED by 0|0:15|node1|2026-12-03T09:59:00|2026-12-03T10:00:00\n",
    ]
    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", lambda command: replies.pop(0))
    watcher = ClusterWatcher()
    watcher.watch("9", tmp_path, array_size=3)
    watcher.update()
    assert [watcher.get_info(f"9_{i}", mode="cache")["State"] for i in range(3)] == ["PENDING"] * 3
    assert watcher.get_info("9", mode="cache")["State"] == "PENDING"
    watcher._finished.clear()
    watcher.update()
    assert [watcher.get_info(f"9_{i}", mode="cache")["State"] for i in range(3)] == ["CANCELLED by 0"] * 3
    assert watcher.get_info("9_0", mode="cache")["NodeList"] == "node1"  # its own line, not the array's
    assert watcher.get_info("9", mode="cache")["State"] == "CANCELLED"


def test_without_accounting_an_element_squeue_forgot_and_no_file_knows_has_ended(monkeypatch, tmp_path):
    """No sacct: squeue no longer lists the array (MinJobAge); elements 0 and 1 left their
    exit-status files, element 2 was cancelled while waiting and never ran. The array has
    ended; it does not wait for element 2 for ever."""
    import types

    (tmp_path / "9_0_exitcode").write_text("0\n")
    (tmp_path / "9_1_exitcode").write_text("143\n")
    forgotten = types.SimpleNamespace(stdout="", stderr="Invalid job id specified", returncode=1, failure=False)
    monkeypatch.setattr("hpctf.executors.slurm.watch.call", lambda command, timeout: forgotten)
    watcher = ClusterWatcher()
    watcher.accounting = False
    watcher.watch("9", tmp_path, array_size=3)
    watcher.update()
    states = [watcher.get_info(f"9_{i}", mode="cache")["State"] for i in range(3)]
    assert states == ["COMPLETED", "FAILED", "LOST"]
    assert watcher.is_done("9", mode="cache")


def test_an_elements_own_line_wins_over_the_range_that_still_lists_it(monkeypatch, tmp_path):
    """For a moment after element 2 starts, sacct lists it twice: its own line and the range
    of waiting elements that still includes it. It runs."""
    out = (
        "JobID|State|ExitCode|NodeList|Start|End\n"
        "5_0|COMPLETED|0:0|node1|2026-12-03T10:00:00|2026-12-03T10:01:00\n"
        "5_2|RUNNING|0:0|node2|2026-12-03T10:01:00|Unknown\n"
        "5_[2-3%1]|PENDING|0:0|None assigned|Unknown|Unknown\n"
        "5_1|COMPLETED|0:0|node1|2026-12-03T10:00:00|2026-12-03T10:01:00\n"
    )
    monkeypatch.setattr("hpctf.executors.slurm.watch._answer", lambda command: out)
    watcher = ClusterWatcher()
    watcher.watch("5", tmp_path, array_size=4)
    watcher.update()
    states = [watcher.get_info(f"5_{i}", mode="cache")["State"] for i in range(4)]
    assert states == ["COMPLETED", "COMPLETED", "RUNNING", "PENDING"]
    assert watcher.get_info("5", mode="cache")["State"] == "RUNNING"
