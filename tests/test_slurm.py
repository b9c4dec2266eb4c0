"""Judged by Slurm itself: every rendered script passes `sbatch --test-only`, and each
backend runs for real on the three-node test cluster (no TensorFlow needed here: these
prove the launch wiring)."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

import hpctf
from hpctf.executors.local.launch import free_port_base
from hpctf.job.nodelist import expand_nodelist
from hpctf.job.ports import job_port_base
from hpctf.render import JobPaths, render_script

from .cases import RENDER_CASES, split_case
from .test_nodelist import NODELIST_CASES

pytestmark = pytest.mark.slurm

PROGRAMS = Path(__file__).resolve().parent / "programs"


def write_job(shared_dir: Path, entry: str, target=None, **fields) -> tuple[Path, Path]:
    """Copy a probe program into a shared folder, render its job; (script, log dir)."""
    src = shared_dir / "src"
    src.mkdir(exist_ok=True)
    shutil.copy(PROGRAMS / entry, src / entry)
    logs = shared_dir / "logs"
    logs.mkdir(exist_ok=True)
    fields = {"time": "5", "python": sys.executable, **fields}
    spec = hpctf.TensorFlow(source_directory=src, entry_script=entry, **fields)
    script = shared_dir / "job.sbatch"
    script.write_text(render_script(spec, JobPaths(src, logs), target=target))
    return script, logs


def probes(logs: Path, job_id: str) -> list[dict]:
    lines = []
    for log in sorted(logs.glob(f"{job_id}_*_log.out")):
        lines += [json.loads(line.split("PROBE ", 1)[1]) for line in log.read_text().splitlines() if "PROBE " in line]
    return lines


def job_logs(logs: Path, job_id: str) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text()}" for p in sorted(logs.glob(f"{job_id}_*")))


def run_job(slurm, script: Path, logs: Path, expect: str = "COMPLETED", timeout: float = 120) -> str:
    job_id = slurm.sbatch(script)
    state, code = slurm.wait(job_id, timeout)
    assert state == expect, f"job {job_id}: {state} {code}\n{job_logs(logs, job_id)}"
    return job_id


@pytest.mark.parametrize("nodelist, hosts", NODELIST_CASES)
def test_nodelist_expansion_agrees_with_scontrol(slurm, nodelist, hosts):
    out = slurm.run("scontrol", "show", "hostnames", nodelist).stdout.split()
    assert out == hosts == expand_nodelist(nodelist)


@pytest.mark.parametrize("name", sorted(RENDER_CASES))
def test_every_snapshot_script_passes_sbatch_test_only(slurm, shared_dir, name):
    fields, target = split_case(name)
    script, _ = write_job(shared_dir, "hello.py", target=target, **fields)
    done = slurm.run("sbatch", "--test-only", str(script), check=False)
    assert done.returncode == 0 and "to start at" in done.stderr, done.stderr


def test_single_process_job_runs_and_logs(slurm, shared_dir):
    script, logs = write_job(shared_dir, "hello.py", script_params={"--msg": "$(touch /tmp/hpctf-pwned-single)"})
    job_id = run_job(slurm, script, logs)
    [probe] = probes(logs, job_id)
    assert probe["argv"] == ["--msg", "$(touch /tmp/hpctf-pwned-single)"]
    assert probe["host"].startswith("node")
    assert not Path("/tmp/hpctf-pwned-single").exists()


def test_single_process_with_one_gpu(slurm, shared_dir):
    script, logs = write_job(shared_dir, "hello.py", use_gpu=True)
    assert "#SBATCH --gres=gpu:1" in script.read_text()
    job_id = run_job(slurm, script, logs)
    [probe] = probes(logs, job_id)
    assert probe["cuda"] is not None and len(probe["cuda"].split(",")) == 1


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_mpi_two_nodes_two_processes(slurm, shared_dir, launcher):
    script, logs = write_job(
        shared_dir,
        "mpi_probe.py",
        distributed_backend="mpi",
        launcher=launcher,
        node_count=2,
        process_count_per_node=2,
        use_gpu=True,
    )
    job_id = run_job(slurm, script, logs)
    ranks = probes(logs, job_id)
    assert sorted(p["rank"] for p in ranks) == [0, 1, 2, 3], job_logs(logs, job_id)
    assert {p["size"] for p in ranks} == {4} and {p["sum"] for p in ranks} == {0 + 1 + 2 + 3}
    assert len({p["host"] for p in ranks}) == 2
    assert all(p["hpctf_rank"] == p["rank"] for p in ranks)
    by_host: dict[str, list[dict]] = {}
    for p in ranks:
        by_host.setdefault(p["host"], []).append(p)
    for host, local in by_host.items():
        gpus = [p["cuda"] for p in local]
        assert all(g is not None and len(g.split(",")) == 1 for g in gpus), (host, gpus)
        assert len(set(gpus)) == len(gpus) == 2, f"{host}: local ranks share a GPU: {gpus}"
        assert sorted(p["local_rank"] for p in local) == [0, 1]


def test_parameter_server_cluster_over_three_nodes(slurm, shared_dir):
    script, logs = write_job(
        shared_dir,
        "ps_probe.py",
        distributed_backend="ps",
        node_count=3,
        parameter_server_count=1,
        worker_count=2,
        chief=True,
        use_gpu=True,
        port_base=free_port_base(4),
    )
    job_id = run_job(slurm, script, logs, timeout=180)
    tasks = probes(logs, job_id)
    assert len(tasks) == 4, job_logs(logs, job_id)
    clusters = {json.dumps(t["tf_config"]["cluster"], sort_keys=True) for t in tasks}
    assert len(clusters) == 1, clusters
    cluster = tasks[0]["tf_config"]["cluster"]
    assert {k: len(v) for k, v in cluster.items()} == {"chief": 1, "ps": 1, "worker": 2}
    pairs = Counter((t["tf_config"]["task"]["type"], t["tf_config"]["task"]["index"]) for t in tasks)
    assert pairs == Counter([("chief", 0), ("ps", 0), ("worker", 0), ("worker", 1)])
    addresses = [t["listening"] for t in tasks]
    assert len({a.rsplit(":", 1)[1] for a in addresses}) == 4, "ports collide"
    for t in tasks:
        assert t["listening"].rsplit(":", 1)[0] == t["host"], "address not on the task's own node"
        role = t["tf_config"]["task"]["type"]
        if role == "ps":
            assert t["cuda"] == "", "a parameter server saw a GPU"
        else:
            assert t["cuda"] is not None and len(t["cuda"].split(",")) == 1
        if role == "worker":
            assert t["connected"] == {cluster["ps"][0]: True}
        if role == "chief":
            assert set(t["connected"]) == set(cluster["ps"] + cluster["worker"]) and all(t["connected"].values())
    assert len({t["host"] for t in tasks}) == 3
    stopped = job_logs(logs, job_id)
    assert stopped.count("stopped: training finished") == 3  # ps0, worker0, worker1


def test_two_ps_jobs_on_one_node_listen_on_ports_of_their_own(slurm, shared_dir):
    """Without port_base, each job's tasks listen on a range derived from its job id: two
    parameter-server jobs running on the same node at the same time do not collide (with
    a fixed default both would bind the same address and port, and one would fail)."""
    jobs = []
    for name in ("first", "second"):
        folder = shared_dir / name
        folder.mkdir()
        script, logs = write_job(
            folder,
            "ps_probe.py",
            distributed_backend="ps",
            parameter_server_count=1,
            worker_count=1,
            environment_variables={"PROBE_HOLD_S": "6"},
            sbatch_options={"nodelist": "node3"},
        )
        assert "--port-base" not in script.read_text()
        jobs.append((slurm.sbatch(script), logs))
    for job_id, logs in jobs:
        state, code = slurm.wait(job_id, 120)
        assert state == "COMPLETED", f"job {job_id}: {state} {code}\n{job_logs(logs, job_id)}"
    ports, workers = {}, {}
    for job_id, logs in jobs:
        tasks = {t["tf_config"]["task"]["type"]: t for t in probes(logs, job_id)}
        assert set(tasks) == {"ps", "worker"}, job_logs(logs, job_id)
        assert {t["host"] for t in tasks.values()} == {"node3"}
        base = job_port_base(job_id, 2)
        assert [tasks["ps"]["listening"], tasks["worker"]["listening"]] == [f"node3:{base}", f"node3:{base + 1}"]
        assert tasks["worker"]["connected"] == {f"node3:{base}": True}
        ports[job_id], workers[job_id] = {base, base + 1}, tasks["worker"]
    (a, b) = workers.values()
    assert a["listening_from"] < b["listening_until"] and b["listening_from"] < a["listening_until"], (
        "the two jobs did not run at the same time: the test proves nothing"
    )
    assert not set.intersection(*ports.values())


def test_failing_job_reports_its_exit_code(slurm, shared_dir):
    script, logs = write_job(shared_dir, "fail.py", arguments=["3"])
    job_id = slurm.sbatch(script)
    state, code = slurm.wait(job_id)
    assert (state, code) == ("FAILED", "3:0"), job_logs(logs, job_id)
    assert slurm.sacct(job_id)[job_id] == ("FAILED", "3:0")
    assert "about to exit 3" in (logs / f"{job_id}_0_log.out").read_text()


def test_sbatch_reads_quoted_directive_values_literally(slurm, shared_dir):
    name, comment = "digits run #1; $(id)", "a 'b' \"c\" `id`"
    script, _ = write_job(shared_dir, "hello.py", job_name=name, sbatch_options={"comment": comment})
    job_id = slurm.sbatch(script, "--hold")
    try:
        shown = slurm.run("scontrol", "show", "job", job_id).stdout
    finally:
        slurm.run("scancel", job_id, check=False)
    lines = [line.strip() for line in shown.splitlines()]
    assert f"Comment={comment}" in lines
    assert any(line.startswith(f"JobId={job_id} JobName={name}") and line.endswith(name) for line in lines)
