"""The local target: the same job script, run on this machine by a stand-in for srun.

No Slurm needed (Open MPI is). Checks each backend, failure and cancel semantics with
the process table (nothing may be left running), history and the shared code path.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hpctf
from hpctf import submission
from hpctf.states import JobState

PROGRAMS = Path(__file__).resolve().parent / "programs"
HPCTF = str(Path(sys.executable).with_name("hpctf"))

pytestmark = pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI (mpirun) is not installed")


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HPCTF_HOME", str(home))
    return home


@pytest.fixture
def project(tmp_path) -> Path:
    src = tmp_path / "project"
    src.mkdir()
    for name in ("hello.py", "mpi_probe.py", "ps_probe.py", "rank_fail.py", "ticker.py"):
        shutil.copy(PROGRAMS / name, src / name)
    return src


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPCTF_HOME": str(home)}
    env.pop("SLURM_CONF", None)
    return subprocess.run([HPCTF, *args], capture_output=True, text=True, env=env, timeout=timeout)


def job_id_of(done: subprocess.CompletedProcess) -> str:
    return done.stdout.split("Submitted job ", 1)[1].split()[0]


def processes_with(marker: str) -> list[str]:
    """Command lines in the process table that mention ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{entry}: {cmdline}")
    return found


def probes(log_dir: Path, job_id: str) -> list[dict]:
    out = []
    for log in sorted(log_dir.glob(f"{job_id}_*_log.out")):
        out += [json.loads(line.split("PROBE ", 1)[1]) for line in log.read_text().splitlines() if "PROBE " in line]
    return out


def test_single_process(home, project):
    done = cli(home, "submit", "--target", "local", "--wait", str(project / "hello.py"), "a b")
    assert done.returncode == 0, done.stderr
    assert '"argv": ["a b"]' in done.stdout and "COMPLETED (exit code 0)" in done.stderr


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_mpi_ranks_on_this_machine(home, project, launcher):
    job = hpctf.submit(
        hpctf.TensorFlow(
            source_directory=project,
            entry_script="mpi_probe.py",
            compute_target="local",
            distributed_backend="mpi",
            launcher=launcher,
            node_count=2,
            process_count_per_node=2,
        )
    )
    assert job.result() == 0, job.stderr()
    ranks = probes(Path(job.paths.folder), job.job_id)
    assert sorted(p["rank"] for p in ranks) == [0, 1, 2, 3]
    assert {p["size"] for p in ranks} == {4} and {p["sum"] for p in ranks} == {6}
    assert sorted(p["local_rank"] for p in ranks) == [0, 1, 2, 3]
    assert all(p["hpctf_rank"] == p["rank"] for p in ranks)


def test_parameter_server_tasks_on_free_local_ports(home, project):
    job = hpctf.submit(
        hpctf.TensorFlow(
            source_directory=project,
            entry_script="ps_probe.py",
            compute_target="local",
            distributed_backend="ps",
            node_count=3,
            parameter_server_count=1,
            worker_count=2,
            chief=True,
        )
    )
    assert job.result() == 0, job.stderr()
    tasks = probes(Path(job.paths.folder), job.job_id)
    assert len(tasks) == 4
    assert len({json.dumps(t["tf_config"]["cluster"], sort_keys=True) for t in tasks}) == 1
    assert sorted((t["tf_config"]["task"]["type"], t["tf_config"]["task"]["index"]) for t in tasks) == [
        ("chief", 0),
        ("ps", 0),
        ("worker", 0),
        ("worker", 1),
    ]
    assert all(t["listening"].startswith("localhost:") for t in tasks)
    assert len({t["listening"] for t in tasks}) == 4
    assert [t["cuda"] for t in tasks if t["tf_config"]["task"]["type"] == "ps"] == [""]
    chief = next(t for t in tasks if t["tf_config"]["task"]["type"] == "chief")
    assert all(chief["connected"].values())


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_a_failing_rank_stops_the_others_and_sets_the_exit_code(home, project, launcher):
    marker = f"fail-{secrets.token_hex(4)}"
    done = cli(
        home,
        "submit",
        "--target",
        "local",
        "--wait",
        "--backend",
        "mpi",
        "--launcher",
        launcher,
        "--procs-per-node",
        "3",
        str(project / "rank_fail.py"),
        marker,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    job_id = job_id_of(done)
    status = json.loads(cli(home, "status", "--json", job_id).stdout)
    assert (status["state"], status["exit_code"]) == ("FAILED", 3)
    assert "rank 1 fails with exit code 3" in cli(home, "logs", job_id, "--task", "1", "--err").stdout
    deadline = time.monotonic() + 15
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == []


def test_cancel_kills_every_rank(home, project):
    marker = f"cancel-{secrets.token_hex(4)}"
    job = hpctf.submit(
        hpctf.TensorFlow(
            source_directory=project,
            entry_script="ticker.py",
            compute_target="local",
            distributed_backend="mpi",
            process_count_per_node=2,
            arguments=["600", "0.2", marker],
        )
    )
    deadline = time.monotonic() + 30
    while len([p for p in processes_with(marker) if "ticker.py" in p and "hpctf.runtime" not in p]) < 2:
        assert time.monotonic() < deadline, "ranks never started"
        time.sleep(0.2)
    assert job.state == JobState.RUNNING
    done = cli(home, "cancel", job.job_id)
    assert done.returncode == 0, done.stderr
    assert job.state == JobState.CANCELLED
    assert processes_with(marker) == []
    assert "tick 0" in job.stdout()


def test_history_follow_and_attach(home, project):
    first = job_id_of(cli(home, "submit", "--target", "local", str(project / "ticker.py"), "4", "0.3"))
    follow = cli(home, "logs", first, "--follow")
    assert follow.stdout.splitlines() == ["tick 0", "tick 1", "tick 2", "tick 3", "ticker done"]
    listing = json.loads(cli(home, "ls", "--json").stdout)
    assert [(r["job_id"], r["target"], r["state"], r["exit_code"]) for r in listing] == [
        (first, "local", "COMPLETED", 0)
    ]
    code = f"import hpctf; job = hpctf.attach({first!r}); print(job.state, job.result())"
    again = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "HPCTF_HOME": str(home)}
    )
    assert again.stdout.split() == ["COMPLETED", "0"], again.stderr


def test_local_script_is_the_slurm_script(home, project):
    spec = hpctf.TensorFlow(
        source_directory=project,
        entry_script="mpi_probe.py",
        distributed_backend="mpi",
        node_count=2,
        process_count_per_node=2,
    )
    local_plan = submission.plan(spec.with_changes(compute_target="local"))
    slurm_plan = submission.plan(spec.with_changes(compute_target="slurm"))
    assert local_plan.target == "local" and slurm_plan.target == "slurm"
    # The same script: only the run folders differ.
    assert local_plan.script.replace(str(local_plan.run_dir), "RUN") == slurm_plan.script.replace(
        str(slurm_plan.run_dir), "RUN"
    )


def test_default_target_is_local_without_sbatch(monkeypatch, project):
    from hpctf.targets import get_target

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert get_target(None).executor == "local"
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/" + name)
    assert get_target(None).executor == "slurm"
    with pytest.raises(hpctf.HpctfError, match="compute_target='nowhere'"):
        get_target("nowhere")


@pytest.mark.tensorflow
def test_readme_quick_start_horovod_on_two_local_processes(home):
    examples = Path(__file__).resolve().parent.parent / "examples"
    done = cli(
        home,
        "submit",
        "--target",
        "local",
        "--wait",
        "--backend",
        "mpi",
        "--procs-per-node",
        "2",
        str(examples / "horovod" / "train.py"),
        "--epochs",
        "20",
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    accuracy = float(done.stdout.rsplit("accuracy=", 1)[1].split()[0])
    assert accuracy >= 0.9
    assert "epoch 20/20" in done.stdout  # progress was streamed
