"""How a run that did not complete is reported: never with exit code 0 (Slurm's ExitCode
is 0:0 for TIMEOUT and jobs cancelled while queued), but with why Slurm ended it; the
`submit --wait` line and exit status, `status` and `status --json`. Unit tables for every
end state, then a real time limit on the test cluster for both MPI launchers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.exits import SCHEDULER_ENDS, reported_exit_code
from hpctf.registry import RunRecord
from hpctf.runs import end_reason, end_text, status_dict, status_rows
from hpctf.states import JobState

from .recorded import slurm_record

PROGRAMS = Path(__file__).resolve().parent / "programs"
HPCTF = str(Path(sys.executable).with_name("hpctf"))


@pytest.mark.parametrize("state", [s.value for s in JobState if s.finished])
@pytest.mark.parametrize("code", [0, 1, 143, None])
def test_exit_code_0_only_for_completed_runs(state, code):
    reported = reported_exit_code(state, code)
    if code == 0 and state != "COMPLETED":
        assert reported is None
    else:
        assert reported == code


def test_every_finished_state_but_completed_and_failed_is_a_scheduler_end():
    finished = {s.value for s in JobState if s.finished}
    assert finished - SCHEDULER_ENDS == {"COMPLETED", "FAILED"}


def record(tmp_path: Path, state: str, exit_code: int | None, spec: dict | None = None) -> RunRecord:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return slurm_record(tmp_path, logs, shape="2x2", state=state, exit_code=exit_code, spec=json.dumps(spec or {}))


@pytest.mark.parametrize(
    "state, code, spec, text",
    [
        ("COMPLETED", 0, {}, "(exit code 0)"),
        ("FAILED", 3, {}, "(exit code 3)"),
        ("FAILED", None, {}, "(no exit code)"),
        ("TIMEOUT", None, {"time": "1"}, "(time limit 00:01:00 reached)"),
        ("TIMEOUT", None, {"time": "1-2:03:04"}, "(time limit 1-02:03:04 reached)"),
        ("TIMEOUT", 143, {"time": "90"}, "(time limit 01:30:00 reached; exit code 143)"),
        ("TIMEOUT", None, {}, "(its time limit was reached)"),
        ("CANCELLED", None, {}, "(stopped by scancel or hpctf cancel)"),
        ("CANCELLED", 143, {}, "(stopped by scancel or hpctf cancel; exit code 143)"),
        ("NODE_FAIL", None, {}, "(a node of the job failed)"),
        ("PREEMPTED", None, {}, "(preempted by a job of higher priority)"),
        ("OUT_OF_MEMORY", 137, {}, "(out of memory: a task went over the job's memory limit; exit code 137)"),
        ("BOOT_FAIL", None, {}, "(its nodes failed to boot)"),
        ("DEADLINE", None, {}, "(its --deadline passed before it could end)"),
        ("REVOKED", None, {}, "(revoked (it ran on another cluster of the federation))"),
        ("LOST", None, {}, "(neither Slurm nor an exit-status file knows how it ended)"),
    ],
)
def test_end_text_says_why_instead_of_exit_code_0(tmp_path, state, code, spec, text):
    run = record(tmp_path, state, code, spec)
    assert end_text(run) == text
    assert status_dict(run)["end_reason"] == end_reason(run)
    rows = dict(status_rows(run))
    assert rows.get("ended") == end_reason(run)


def test_a_node_fail_names_the_dead_node(tmp_path):
    run = record(tmp_path, "NODE_FAIL", None)
    (Path(run.log_dir) / "21_node_failure").write_text(json.dumps({"nodes": [["node2", "down*: Not responding"]]}))
    assert end_text(run) == "(node node2 failed)"


@pytest.mark.parametrize("state", ["RUNNING", "PENDING", "COMPLETED", "FAILED"])
def test_no_end_reason_where_the_exit_code_says_it(tmp_path, state):
    assert end_reason(record(tmp_path, state, None)) is None


# -- On the test cluster ------------------------------------------------------------------


@pytest.mark.slurm
def test_a_timed_out_job_reports_its_time_limit_not_exit_code_0(slurm, tmp_path):
    """`--time 1` and a program that runs longer: one process, mpirun and srun over two
    nodes, and a program that ignores SIGTERM (the issue's `TIMEOUT (exit code 0)`), side
    by side."""
    src = tmp_path / "project"
    src.mkdir()
    shutil.copy(PROGRAMS / "ticker.py", src / "ticker.py")
    shutil.copy(PROGRAMS / "stubborn.py", src / "stubborn.py")
    env = {**slurm.env, "HPCTF_HOME": str(tmp_path / "home")}
    ticker = [str(src / "ticker.py"), "600", "1"]
    shapes = {
        "single": ticker,
        "mpirun": ["--backend", "mpi", "--launcher", "mpirun", "--nodes", "2", *ticker],
        "srun": ["--backend", "mpi", "--nodes", "2", *ticker],
        # Ignores SIGTERM: SIGKILL after KillWait ends the script before its trap writes a
        # code, and sacct says TIMEOUT 0:0, the issue's `TIMEOUT (exit code 0)`.
        "stubborn": [str(src / "stubborn.py")],
    }
    waiting = {
        name: subprocess.Popen(
            [HPCTF, "submit", "--wait", "--time", "1", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, options in shapes.items()
    }
    for name, proc in waiting.items():
        out, err = proc.communicate(timeout=300)
        job_id = out.split("Submitted job ", 1)[1].split()[0]
        last = err.strip().splitlines()[-1]
        print(f"{name}: {last}")
        if name == "stubborn":
            sacct = slurm.run("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode").stdout.strip()
            assert sacct == "TIMEOUT|0:0", sacct  # Slurm's own record: no code to report
            assert last == f"job {job_id} TIMEOUT (time limit 00:01:00 reached; hpctf exits 1)", err[-2000:]
        assert last == f"job {job_id} TIMEOUT (time limit 00:01:00 reached; hpctf exits 1)" or (
            last.startswith(f"job {job_id} TIMEOUT (time limit 00:01:00 reached; exit code ")
            and "exit code 0" not in last
        ), (name, err[-2000:])
        assert proc.returncode != 0, (name, proc.returncode, last)
        assert "tick 30" in out, (name, out[-500:])  # it did run for its minute
        if name == "stubborn":
            assert (
                json.loads(
                    subprocess.run([HPCTF, "status", "--json", job_id], capture_output=True, text=True, env=env).stdout
                )["exit_code"]
                is None
            )
        done = subprocess.run([HPCTF, "status", "--json", job_id], capture_output=True, text=True, env=env)
        info = json.loads(done.stdout)
        assert info["state"] == "TIMEOUT" and info["exit_code"] != 0, (name, info)
        assert info["end_reason"] == "time limit 00:01:00 reached", (name, info)
        human = subprocess.run([HPCTF, "status", job_id], capture_output=True, text=True, env=env).stdout
        assert "time limit 00:01:00 reached" in human, human
