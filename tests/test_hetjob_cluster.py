"""Heterogeneous parameter-server jobs on the test cluster (issue 19): parameter servers on
the `cpu` partition (node1), the chief and workers on the `gpu` partition (node[2-3]), in
one job (#SBATCH hetjob) and one step over both components.

- tests/programs/ps_probe.py (no TensorFlow) connects every task to the addresses its
  TF_CONFIG names: every TF_CONFIG agrees, every task runs on a node of its partition,
  parameter servers see no GPU and each worker sees one of its own;
- the parameter-server example trains with ParameterServerStrategy to its accuracy;
- a failing worker and a cancel are tracked as such.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from hpctf.states import JobState

from .training import HPCTF, all_logs, hpctf_env, submit_cli, task_log

pytestmark = pytest.mark.slurm

PROGRAMS = Path(__file__).resolve().parent / "programs"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HET = ("--backend", "ps", "--ps-partition", "cpu", "--partition", "gpu", "--time", "10")
PARTITION_NODES = {"cpu": {"node1"}, "gpu": {"node2", "node3"}}


def probes(logs: Path, job_id: str, tasks: int) -> list[dict]:
    found = []
    for rank in range(tasks):
        lines = [line for line in task_log(logs, job_id, rank).splitlines() if line.startswith("PROBE ")]
        assert lines, f"task {rank} printed no probe:\n{all_logs(logs, job_id)}"
        found.append(json.loads(lines[-1][len("PROBE ") :]))
    return found


def test_parameter_servers_on_cpu_nodes_workers_on_gpu_nodes(slurm, home):
    job_id, logs = submit_cli(
        slurm,
        home,
        *HET,
        "--ps",
        "2",
        "--workers",
        "2",
        "--chief",
        "--nodes",
        "2",
        "--use-gpu",
        str(PROGRAMS / "ps_probe.py"),
    )
    found = probes(logs, job_id, 5)
    cluster = found[0]["tf_config"]["cluster"]
    assert all(p["tf_config"]["cluster"] == cluster for p in found)
    assert sorted(cluster) == ["chief", "ps", "worker"] and len(cluster["ps"]) == 2 and len(cluster["worker"]) == 2
    for probe in found:
        role = probe["tf_config"]["task"]["type"]
        assert probe["host"] in PARTITION_NODES["cpu" if role == "ps" else "gpu"], probe
        assert probe["listening"] == cluster[role][probe["tf_config"]["task"]["index"]]
        if role == "ps":
            assert probe["cuda"] == ""
        else:
            assert probe["cuda"] in ("0", "1")
    gpu_users = [(p["host"], p["cuda"]) for p in found if p["tf_config"]["task"]["type"] != "ps"]
    assert len(set(gpu_users)) == 3  # no two tasks of a node share a GPU
    chief = next(p for p in found if p["tf_config"]["task"]["type"] == "chief")
    assert set(chief["connected"]) == set(cluster["ps"]) | set(cluster["worker"])
    assert all(chief["connected"].values())
    parts = components(slurm, job_id, "Partition,NodeList")
    assert parts == [f"{job_id}+0|cpu|node1", f"{job_id}+1|gpu|node[2-3]"]


@pytest.mark.tensorflow
def test_the_parameter_server_example_trains_across_both_partitions(slurm, home):
    job_id, logs = submit_cli(
        slurm,
        home,
        *HET,
        "--ps",
        "2",
        "--workers",
        "2",
        "--chief",
        "--nodes",
        "2",
        str(EXAMPLES / "parameter_server" / "train.py"),
        timeout=600,
    )
    chief = task_log(logs, job_id, 2)  # parameter servers first: ps 0, ps 1, chief, workers
    accuracy = [float(line.split("=")[1]) for line in chief.splitlines() if line.startswith("accuracy=")]
    assert accuracy and accuracy[-1] >= 0.9, all_logs(logs, job_id)
    for rank in (0, 1):
        assert "stopped: training finished" in task_log(logs, job_id, rank, "err")
    for rank in (3, 4):
        assert task_log(logs, job_id, rank, "err").count("worker step") > 0, all_logs(logs, job_id)


def hpctf_json(slurm, home: Path, *args: str) -> dict:
    done = subprocess.run([HPCTF, *args], capture_output=True, text=True, env=hpctf_env(slurm, home), timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def until_finished(slurm, home: Path, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = hpctf_json(slurm, home, "status", "--json", job_id)
        if JobState.from_slurm(status["state"]).finished:
            return status
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {status['state']} after {timeout}s")


def submit_small(slurm, home: Path, program: str, *args: str) -> dict:
    """`hpctf submit --json` of tests/programs/PROGRAM as a small het ps job: 1 parameter
    server on cpu, 2 workers on gpu."""
    shape = (*HET, "--ps", "1", "--workers", "2", "--nodes", "2")
    return hpctf_json(slurm, home, "submit", "--json", *shape, str(PROGRAMS / program), *args)


def running_ticker(slurm, home: Path, *ticks: str) -> dict:
    """A het ps job (1 ps on cpu, 2 workers on gpu) of tests/programs/ticker.py, submitted
    and running for a few seconds: Slurm's accounting has recorded both components by then."""
    record = submit_small(slurm, home, "ticker.py", *ticks)
    deadline = time.monotonic() + 60
    while "tick 2" not in task_log(Path(record["log_dir"]), record["job_id"], 0):
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(1)
    return record


def components(slurm, job_id: str, fields: str) -> list[str]:
    """sacct's lines of the job's two components (waiting for accounting to list both)."""
    deadline = time.monotonic() + 30
    while True:
        lines = slurm.run("sacct", "-X", "-n", "-P", "-j", job_id, "-o", f"JobID,{fields}").stdout.splitlines()
        if len(lines) == 2 and all("+" in line.split("|")[0] for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(1)


def test_a_failing_worker_fails_the_job(slurm, home):
    record = submit_small(slurm, home, "worker_fails.py")
    status = until_finished(slurm, home, record["job_id"])
    assert status["state"] == "FAILED" and status["exit_code"] != 0, status
    logs = Path(record["log_dir"])
    assert "worker 0 fails with exit code 4" in task_log(logs, record["job_id"], 1, "err")  # ps 0, then worker 0


def test_cancelling_ends_both_components(slurm, home):
    job_id = running_ticker(slurm, home, "600")["job_id"]
    subprocess.run([HPCTF, "cancel", job_id], check=True, env=hpctf_env(slurm, home), timeout=60)
    assert until_finished(slurm, home, job_id)["state"] == "CANCELLED"
    deadline = time.monotonic() + 60
    while slurm.run("squeue", "-h", "-j", job_id, check=False).stdout.strip():
        assert time.monotonic() < deadline, slurm.run("squeue", "-j", job_id, check=False).stdout
        time.sleep(1)
    states = components(slurm, job_id, "State")
    assert [s.split("|")[1].split()[0] for s in states] == ["CANCELLED", "CANCELLED"], states


def test_a_requeued_heterogeneous_job_is_one_job_run_twice(slurm, home):
    """`scontrol requeue` (as preemption does) sends both components back to the queue:
    hpctf follows one job, with one restart, to its end."""
    from .test_requeue import requeue_and_release

    record = running_ticker(slurm, home, "8", "1")
    job_id = record["job_id"]
    slurm.run("scontrol", "requeue", job_id)
    requeue_and_release(slurm, job_id, Path(record["log_dir"]))
    status = until_finished(slurm, home, job_id, timeout=180)
    assert (status["state"], status["exit_code"], status["restarts"]) == ("COMPLETED", 0, 1), status
    assert task_log(Path(record["log_dir"]), job_id, 1).count("ticker done") == 1
