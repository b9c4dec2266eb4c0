"""Tracking through faults, on a cluster of their own (the faults would disturb other
tests): sacct failing, slurmctld restarting under a running job, a node dying."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hpctf.executors.local.launch import free_port_base
from hpctf.states import JobState

from .slurmlab import fault, start_cluster, stop_cluster

pytestmark = pytest.mark.slurm

PROGRAMS = Path(__file__).resolve().parent / "programs"
HPCTF = str(Path(sys.executable).with_name("hpctf"))

# Counted for the closing note: faults injected, and those hpctf tracked through.
FAULTS: dict[str, bool] = {}


@pytest.fixture(scope="module")
def lab(slurm):
    """Two nodes that slurmctld declares dead after 10 s of silence, with accounting."""
    try:
        cluster = start_cluster(
            LAB="/tmp/hpctf-lab-faults",
            NODES="2",
            GPUS="0",
            PORT=str(free_port_base(20, start=17100)),
            FIRST_JOB_ID="700000",
            SLURMD_TIMEOUT="10",
        )
    except Exception as err:  # noqa: BLE001
        pytest.fail(str(err))
    yield cluster
    print(f"faults injected: {len(FAULTS)}, tracked through: {sum(FAULTS.values())} {FAULTS}")
    stop_cluster(cluster)


@pytest.fixture
def project(tmp_path) -> Path:
    tmp_path.chmod(0o755)
    src = tmp_path / "project"
    src.mkdir()
    shutil.copy(PROGRAMS / "ticker.py", src / "ticker.py")
    return src


def hpctf_cli(
    lab, home: Path, *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HPCTF, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**lab.env, "HPCTF_HOME": str(home), **(env or {})},
    )


def submit(lab, home: Path, *args: str) -> str:
    done = hpctf_cli(lab, home, "submit", "--json", "--time", "5", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["job_id"]


def status(lab, home: Path, job_id: str, env: dict | None = None) -> dict:
    done = hpctf_cli(lab, home, "status", "--json", job_id, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(lab, home, job_id, states: set[str], timeout: float = 120, env: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    info: dict = {}
    while time.monotonic() < deadline:
        info = status(lab, home, job_id, env)
        if info["state"] in states:
            return info
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {states}: {info}")


def recorded_codes(home: Path, job_id: str) -> set[int]:
    """The exit codes a run wrote into its log folder: the batch script's and each failed task's."""
    files = [*home.glob(f"runs/*/logs/{job_id}_exitcode"), *home.glob(f"runs/*/logs/{job_id}_*_failed")]
    texts = [path.read_text().split() for path in files]
    return {int(words[0]) for words in texts if words and words[0].lstrip("-").isdigit()}  # one being written: not yet


def test_status_stays_right_when_sacct_fails(lab, tmp_path, project):
    """An sacct that errors (slurmdbd unreachable): squeue and the exit-status file carry on."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sacct").write_text(
        "#!/bin/sh\necho 'sacct: error: Problem talking to the database: Connection refused' >&2\nexit 1\n"
    )
    (shim / "sacct").chmod(0o755)
    broken = {"PATH": f"{shim}:{lab.env['PATH']}"}
    home = tmp_path / "home"
    job = submit(lab, home, str(project / "ticker.py"), "6", "0.5")
    assert wait_for(lab, home, job, {"RUNNING"}, env=broken)["state"] == "RUNNING"
    done = wait_for(lab, home, job, {"COMPLETED", "FAILED"}, env=broken)
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0)
    FAULTS["sacct fails"] = True


def test_a_slurmctld_restart_under_a_running_job(lab, tmp_path, project):
    home = tmp_path / "home"
    job = submit(lab, home, str(project / "ticker.py"), "30", "0.5")
    wait_for(lab, home, job, {"RUNNING"})
    # hpctf may learn RUNNING from squeue before accounting does (sacct lags by a second or
    # more): the outage must come once slurmdbd's records say it too.
    deadline = time.monotonic() + 30
    while lab.run("sacct", "-n", "-P", "-X", "-j", job, "-o", "State", check=False).stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, "accounting never recorded the job's start"
        time.sleep(0.2)
    fault(lab, "stop-ctld")
    try:
        t0 = time.monotonic()
        during = status(lab, home, job)  # sacct still answers from slurmdbd's records
        assert during["state"] == "RUNNING" and time.monotonic() - t0 < 60
        logs = hpctf_cli(lab, home, "logs", job)
        assert logs.returncode == 0 and "tick 0" in logs.stdout
    finally:
        fault(lab, "start-ctld")
    done = wait_for(lab, home, job, {"COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL"}, timeout=120)
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0), done
    assert "ticker done" in hpctf_cli(lab, home, "logs", job).stdout
    FAULTS["slurmctld restart"] = True


@pytest.mark.parametrize("requeue", [True, False], ids=["requeued", "no-requeue"])
def test_a_node_dying_under_a_two_node_job(lab, tmp_path, project, requeue):
    """Slurm requeues a batch job whose node fails (JobRequeue=1, its default; also on
    22.05): hpctf says so, with the node, Slurm's reason and the attempt, in status, status
    --json and the --wait watcher. Submitted --no-requeue, the job ends NODE_FAIL."""
    home = tmp_path / "home"
    options = [] if requeue else ["--sbatch", "no-requeue"]
    waiting = subprocess.Popen(
        [HPCTF, "submit", "--json", "--wait", "--time", "5", *options, "--backend", "mpi", "--nodes", "2"]
        + [str(project / "ticker.py"), "120", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**lab.env, "HPCTF_HOME": str(home)},
    )
    job = json.loads(waiting.stdout.readline())["job_id"]
    running = wait_for(lab, home, job, {"RUNNING"})
    assert running["nodes"] == "node[1-2]"
    deadline = time.monotonic() + 60
    while not all(  # both tasks are ticking
        "tick 0" in hpctf_cli(lab, home, "logs", job, "--task", str(task)).stdout for task in (0, 1)
    ):
        assert time.monotonic() < deadline, "the two tasks never both printed 'tick 0'"
        time.sleep(0.2)
    fault(lab, "kill-node", "node2")
    try:
        # slurmctld declares node2 dead after SlurmdTimeout (10 s) without an answer.
        if requeue:
            deadline = time.monotonic() + 120
            seen = status(lab, home, job)
            while seen["requeued"] is None:
                assert time.monotonic() < deadline and not JobState(seen["state"]).finished, seen
                time.sleep(0.5)
                seen = status(lab, home, job)
            [[node, reason]] = seen["requeued"]["nodes"]
            assert node == "node2" and "Not responding" in reason, seen  # Slurm's own reason
            assert (seen["state"], seen["restarts"], seen["requeued"]["attempt"]) == ("PENDING", 1, 2), seen
            assert seen["state_detail"] == "requeued after node node2 failed; attempt 2", seen
            scontrol = lab.run("scontrol", "show", "job", job, check=False).stdout
            assert "Restarts=1" in scontrol, scontrol  # Slurm's own count agrees
            human = hpctf_cli(lab, home, "status", job).stdout
            assert "PENDING (requeued after node node2 failed; attempt 2)" in human, human
            # The --wait watcher sees the requeue on its own next refresh: wait for its line
            # (read beside it) before cancelling, or the cancel may come first.
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(waiting.stderr), daemon=True)
            reader.start()
            line = f"job {job} PENDING (requeued after node node2 failed; attempt 2)"
            deadline = time.monotonic() + 90
            while not any(line in seen_line for seen_line in lines) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert hpctf_cli(lab, home, "cancel", job).returncode == 0
            waiting.wait(timeout=120)
            reader.join(timeout=30)
            err = "".join(lines)
            assert line in err, err
            assert f"job {job} CANCELLED" in err and waiting.returncode != 0, err
        else:
            ended = wait_for(lab, home, job, {"NODE_FAIL", "FAILED", "CANCELLED", "COMPLETED"}, timeout=120)
            # Never 0. Either no exit code (Slurm killed the script before its trap ran), or one
            # the run wrote itself: mpirun's 1 on losing node2's daemon (Open MPI 5 on 24.11),
            # or the first failed task's, 143 (Slurm's SIGTERM), which wins when it was written.
            assert ended["state"] == "NODE_FAIL", ended
            assert ended["exit_code"] is None or ended["exit_code"] in recorded_codes(home, job) - {0}, ended
            [[node, reason]] = ended["failed_nodes"]
            assert node == "node2" and "Not responding" in reason, ended  # Slurm's own reason
            assert ended["end_reason"] == "node node2 failed" and ended["requeued"] is None, ended
            human = hpctf_cli(lab, home, "status", job).stdout
            assert f"failed nodes  node2 ({reason})" in human, human
            _, err = waiting.communicate(timeout=120)
            code = ended["exit_code"]
            tail = "hpctf exits 1" if code is None else f"exit code {code}"
            assert f"job {job} NODE_FAIL (node node2 failed; {tail})" in err, err
            assert waiting.returncode == (code or 1), err
        logs = hpctf_cli(lab, home, "logs", job)  # the logs are kept
        assert logs.returncode == 0 and "tick 0" in logs.stdout
    finally:
        fault(lab, "revive-node", "node2")
        if waiting.poll() is None:
            hpctf_cli(lab, home, "cancel", job)
            waiting.kill()
    # node2 comes back to service by itself (ReturnToService=2) once its slurmd registers.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = lab.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        if "node2 idle" in states:
            break
        time.sleep(0.5)
    assert "node2 idle" in states, states
    FAULTS["node death" + ("" if requeue else ", no requeue")] = True
