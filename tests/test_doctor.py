"""`hpctf doctor`: preflight jobs on the real test cluster, and the report's judgement.

The cluster tests run real doctor jobs (no mocks): healthy shapes must pass every check,
and broken ones (an srun MPI plugin that does not exist, a Python without TensorFlow or
without hpctf, a taken port, a shape sbatch refuses) must fail with advice that says what
to change. Each doctor job is small (at most 4 ranks) and takes seconds.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import hpctf
from hpctf import doctor
from hpctf.doctor import FAIL, PASS, SKIP, WARN, Check, JobResult, Shape
from hpctf.executors.local.launch import free_port_base

HPCTF = str(Path(sys.executable).with_name("hpctf"))
HEAVY = ("tensorflow", "horovod", "mpi4py")


def run_doctor(slurm, home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """`hpctf doctor ARGS` in a fresh process; stderr ends with the heavy modules it imported."""
    code = (
        "import sys; from hpctf.cli import main; sys.argv = ['hpctf', 'doctor', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as end:\n    code = end.code\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**slurm.env, "HPCTF_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout)


def json_report(done: subprocess.CompletedProcess) -> dict:
    assert "HEAVY []" in done.stderr, f"the CLI imported TensorFlow/Horovod/mpi4py: {done.stderr}"
    return json.loads(done.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def failed(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["status"] == FAIL]


# ---------------------------------------------------------------------------------------
# Real doctor jobs on the test cluster
# ---------------------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.tensorflow
@pytest.mark.parametrize("launcher, other", [("srun", "mpirun"), ("mpirun", "srun")])
def test_healthy_two_node_mpi_doctor_passes_every_check(slurm, home, launcher, other):
    done = run_doctor(
        slurm, home, "--json", "--backend", "mpi", "--launcher", launcher, "--nodes", "2", "--procs-per-node", "2"
    )
    report = json_report(done)
    assert done.returncode == 0 and report["ok"], json.dumps(report, indent=1)
    first, second = ("srun --mpi=pmix", "mpirun") if launcher == "srun" else ("mpirun", "srun --mpi=pmix")
    assert statuses(report) == {
        "sbatch --test-only": PASS,
        "doctor job": PASS,
        "ranks start": PASS,
        f"MPI allreduce ({first})": PASS,
        f"MPI allreduce ({second})": PASS,
        "GPU visibility": SKIP,
        "hostnames": PASS,
        "Python environment": PASS,
        "Keras": PASS,
    }
    keras = next(c for c in report["checks"] if c["name"] == "Keras")["summary"]
    assert re.match(
        r"tf\.keras is tf_keras 2\.\d+\.\d+ in the tasks \(keras='auto', TF_USE_LEGACY_KERAS=1\); "
        r"Horovod's Keras layer trains on 4 ranks",
        keras,
    ), keras
    assert [j["launcher"] for j in report["jobs"]] == [launcher, other]
    assert all(j["state"] == "COMPLETED" and j["exit_code"] == 0 for j in report["jobs"])
    ranks = report["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1, 2, 3]
    assert [str(r["launcher_id"]) for r in ranks] == ["0", "1", "2", "3"]
    assert len({r["host"] for r in ranks}) == 2 and sorted(r["local_rank"] for r in ranks) == [0, 0, 1, 1]
    env = next(c for c in report["checks"] if c["name"] == "Python environment")["summary"]
    assert "TensorFlow 2." in env and "Horovod 0.28" in env and "(MPI)" in env
    allreduce = next(c for c in report["checks"] if c["name"] == f"MPI allreduce ({first})")["summary"]
    assert "size 4, sum 6" in allreduce
    # The doctor job went through hpctf's own submission path: it is in the history.
    history = subprocess.run(
        [HPCTF, "ls", "--json"], capture_output=True, text=True, env={**slurm.env, "HPCTF_HOME": str(home)}
    )
    assert {r["job_id"] for r in json.loads(history.stdout)} == {j["job_id"] for j in report["jobs"]}
    script = Path(report["jobs"][0]["run_dir"], "job.sbatch").read_text()
    assert ("srun --mpi=pmix" in script) == (launcher == "srun") and (
        ("mpirun -np 4" in script) == (launcher == "mpirun")
    )


@pytest.mark.slurm
@pytest.mark.tensorflow
def test_ps_doctor_checks_every_tf_config_port(slurm, home):
    # 4 tasks on two 4-CPU nodes: Slurm would pack them 3 + 1 unless the script caps the
    # tasks per node; the ports are the job's own range (no --port-base).
    done = run_doctor(
        slurm, home, "--json", "--backend", "ps", "--nodes", "2", "--ps", "1", "--workers", "2", "--chief"
    )
    report = json_report(done)
    assert done.returncode == 0 and report["ok"], json.dumps(report, indent=1)
    checks = statuses(report)
    assert checks["TF_CONFIG ports"] == PASS and checks["ranks start"] == PASS and checks["Python environment"] == PASS
    assert checks["Keras"] == PASS and "tf.keras is tf_keras" in next(
        c["summary"] for c in report["checks"] if c["name"] == "Keras"
    )
    assert not any(name.startswith("MPI") for name in checks)  # ps jobs do not use MPI
    ports = next(c for c in report["checks"] if c["name"] == "TF_CONFIG ports")["summary"]
    assert "4 tasks listen" in ports and "all 12 task-to-task connections work" in ports
    assert [r["role"] for r in report["ranks"]] == ["chief/0", "ps/0", "worker/0", "worker/1"]
    hosts = [r["host"] for r in report["ranks"]]
    assert hosts[0] == hosts[1] != hosts[2] == hosts[3], hosts  # blocks of 2, as tasks_on_node() says
    assert report["ranks"][1]["cuda_visible_devices"] == ""


@pytest.mark.slurm
def test_ps_doctor_fails_when_a_tf_config_port_is_taken(slurm, home):
    port_base = free_port_base(3)
    with socket.create_server(("", port_base + 1)):  # task 1's port, on the nodes' shared network
        done = run_doctor(
            slurm, home, "--backend", "ps", "--nodes", "2", "--ps", "1", "--workers", "2", "--port-base", str(port_base)
        )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "FAIL  TF_CONFIG ports" in out
    assert f"cannot listen on node1:{port_base + 1}" in out and "Address already in use" in out
    assert (
        "what to change: another process holds a port on that node: "
        f"choose another --port-base (the job uses {port_base}-{port_base + 2})" in out
    )


@pytest.mark.slurm
@pytest.mark.tensorflow
def test_gpu_doctor_gives_each_local_rank_its_own_gpu(slurm, home):
    done = run_doctor(
        slurm,
        home,
        "--json",
        "--backend",
        "mpi",
        "--nodes",
        "1",
        "--procs-per-node",
        "2",
        "--gpus-per-node",
        "2",
        "--no-other-launcher",
    )
    report = json_report(done)
    assert done.returncode == 0 and report["ok"], json.dumps(report, indent=1)
    gpu = next(c for c in report["checks"] if c["name"] == "GPU visibility")
    assert gpu["status"] == PASS
    assert "2 GPU rank(s), each with its own CUDA_VISIBLE_DEVICES" in gpu["summary"]
    assert "only CUDA_VISIBLE_DEVICES was checked" in gpu["summary"]  # the test cluster's GPUs are fake
    assert sorted(r["cuda_visible_devices"] for r in report["ranks"]) == ["0", "1"]
    assert len(report["jobs"]) == 1  # --no-other-launcher


@pytest.mark.slurm
def test_unknown_srun_mpi_plugin_fails_and_says_what_to_change(slurm, home):
    done = run_doctor(slurm, home, "--backend", "mpi", "--nodes", "2", "--pmi", "pmi_bogus")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "FAIL  ranks start" in out and "FAIL  MPI allreduce (srun --mpi=pmi_bogus)" in out
    assert "ok    MPI allreduce (mpirun)" in out
    shown = re.search(
        r"srun --mpi=pmi_bogus failed: this srun has no 'pmi_bogus' MPI plugin \(`srun --mpi=list`: ([^)]*)\)", out
    )
    assert shown, out
    # The advice names the plugins this srun lists, in its order: 22.05 starts with pmix and ends
    # with pmix_v4, 24.11 starts with none and ends with pmix_v5 (a line "... versions available:").
    listing = slurm.run("srun", "--mpi=list").stdout.splitlines()[1:]
    plugins = [word.strip() for line in listing for word in line.split(":")[-1].split(",") if word.strip()]
    assert "pmix" in plugins and shown.group(1).split(", ") == plugins
    assert "or use --launcher mpirun (mpirun works here)" in out
    assert "Invalid MPI type 'pmi_bogus'" in out  # srun's own words, from the job's log
    assert "skip  hostnames" in out and "check(s) failed" in out


def bare_venv(folder: Path) -> Path:
    """The python of a new, empty venv on the project's own base interpreter: no hpctf, no
    TensorFlow, whatever the machine's other interpreters have installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    folder.parent.chmod(0o755)  # the jobs run it
    return folder / "bin" / "python"


@pytest.fixture
def python_without_tensorflow(tmp_path) -> Path:
    """A bare venv with hpctf (for the task bootstrap) but no TensorFlow."""
    venv = tmp_path / "notf"
    python = bare_venv(venv)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    extra = venv / "extra"
    extra.mkdir()
    hostlist = Path(sysconfig.get_paths()["purelib"]) / "hostlist.py"
    (extra / "hostlist.py").write_text(hostlist.read_text())
    (Path(purelib) / "hpctf-source.pth").write_text(f"{Path(hpctf.__file__).parent.parent}\n{extra}\n")
    tmp_path.chmod(0o755)
    return python


@pytest.mark.slurm
def test_python_without_tensorflow_fails_and_says_what_to_change(slurm, home, python_without_tensorflow):
    python = str(python_without_tensorflow)
    done = run_doctor(
        slurm,
        home,
        "--backend",
        "ps",
        "--ps",
        "0",
        "--workers",
        "2",
        "--nodes",
        "2",
        "--port-base",
        str(free_port_base(2)),
        "--python",
        python,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "ok    ranks start" in out and "ok    TF_CONFIG ports" in out
    assert "FAIL  Python environment" in out
    assert (
        f"TensorFlow is not importable with {python} on node1: ModuleNotFoundError: No module named 'tensorflow'" in out
    )
    assert "what to change: install TensorFlow into the job's Python" in out


@pytest.mark.slurm
def test_mpi_doctor_on_a_python_without_mpi4py_and_horovod_says_install_them(slurm, home, python_without_tensorflow):
    python = str(python_without_tensorflow)
    done = run_doctor(slurm, home, "--json", "--backend", "mpi", "--nodes", "2", "--python", python)
    report = json_report(done)
    assert done.returncode == 1 and not report["ok"]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["ranks start"]["status"] == PASS
    for name, status in (("MPI allreduce (srun --mpi=pmix)", FAIL), ("MPI allreduce (mpirun)", WARN)):
        mpi = checks[name]
        assert mpi["status"] == status and "No module named 'mpi4py'" in mpi["summary"], mpi
        assert (
            f"the job's Python ({python}) has no horovod and no mpi4py, so no rank could run MPI: install mpi4py"
            in mpi["advice"]
        )
        assert "PMIx" not in mpi["advice"]


@pytest.mark.slurm
def test_python_without_hpctf_fails_and_says_what_to_change(slurm, home, tmp_path):
    done = run_doctor(slurm, home, "--json", "--python", str(bare_venv(tmp_path / "bare")))
    report = json_report(done)
    assert done.returncode == 1 and not report["ok"]
    [ranks] = [c for c in failed(report) if c["name"] == "ranks start"]
    assert ranks["summary"].startswith("no rank of 1 started")
    assert "cannot import hpctf" in ranks["advice"] and "pip install hpctf" in ranks["advice"]
    assert any("No module named 'hpctf'" in line for line in ranks["details"])
    assert statuses(report)["Python environment"] == SKIP


@pytest.mark.slurm
def test_shape_sbatch_refuses_fails_before_submitting(slurm, home):
    done = run_doctor(slurm, home, "--json", "--gpus-per-node", "3")  # the nodes have 2
    report = json_report(done)
    assert done.returncode == 1
    [test_only] = failed(report)
    assert test_only["name"] == "sbatch --test-only" and "sbatch refuses the script" in test_only["summary"]
    assert "GPUs" in test_only["advice"]
    assert report["jobs"][0]["job_id"] is None and not (home / "runs").exists()
    assert {c["status"] for c in report["checks"][1:]} == {SKIP}


@pytest.mark.slurm
def test_doctor_that_runs_out_of_time_cancels_its_job_and_fails(slurm, home):
    # The job sleeps before its probe starts: it cannot be done within the second.
    done = run_doctor(slurm, home, "--json", "--timeout", "1", "--setup", "sleep 60")
    report = json_report(done)
    assert done.returncode == 1 and not report["ok"]
    job = next(c for c in report["checks"] if c["name"] == "doctor job")
    assert job["status"] == FAIL and "when --timeout ran out (cancelled)" in job["summary"], job
    [record] = report["jobs"]
    assert record["timed_out"] is True
    state, _ = slurm.wait(record["job_id"], timeout=60)
    assert state == "CANCELLED", state


def test_doctor_takes_submit_shape_options_but_no_entry_script():
    done = subprocess.run([HPCTF, "doctor", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for option in (
        "--backend",
        "--nodes",
        "--procs-per-node",
        "--gpus-per-node",
        "--launcher",
        "--pmi",
        "--target",
        "--python",
        "--json",
    ):
        assert option in done.stdout
    assert "ENTRY_SCRIPT" not in done.stdout and "--source-dir" not in done.stdout
    bad = subprocess.run([HPCTF, "doctor", "--backend", "mpi", "--nodes", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "node_count=0" in bad.stderr


@pytest.mark.slurm
@pytest.mark.tensorflow
def test_heterogeneous_ps_doctor_checks_partitions_and_reach_across_them(slurm, home):
    """--ps-partition: the probe runs as the heterogeneous job (ps on cpu, the rest on gpu)."""
    done = run_doctor(
        slurm,
        home,
        "--json",
        "--backend",
        "ps",
        "--ps",
        "2",
        "--workers",
        "2",
        "--chief",
        "--nodes",
        "2",
        "--ps-partition",
        "cpu",
        "--partition",
        "gpu",
        "--gpus-per-node",
        "2",
    )
    report = json_report(done)
    assert done.returncode == 0 and report["ok"], json.dumps(report, indent=1)
    checks = {c["name"]: c for c in report["checks"]}
    assert all(checks[n]["status"] == PASS for n in ("ranks start", "partitions", "ps across partitions"))
    assert checks["GPU visibility"]["status"] == PASS
    assert checks["partitions"]["summary"].startswith("parameter servers on node1 (cpu); chief and workers on ")
    assert "in gpu reach all 2 parameter server(s) in cpu (6 connections)" in checks["ps across partitions"]["summary"]
    assert report["shape"]["het_partitions"] == ["cpu", "gpu"] and "heterogeneous" in report["shape"]["description"]
    rows = report["ranks"]
    assert [r["role"] for r in rows] == ["ps/0", "ps/1", "chief/0", "worker/0", "worker/1"]
    assert [r["host"] for r in rows[:2]] == ["node1", "node1"] and {r["host"] for r in rows[2:]} == {"node2", "node3"}
    assert [r["cuda_visible_devices"] for r in rows[:2]] == ["", ""]  # parameter servers see no GPU


# ---------------------------------------------------------------------------------------
# The judgement alone (no cluster)
# ---------------------------------------------------------------------------------------


def _shape(**changes) -> Shape:
    fields = dict(
        backend="mpi",
        tasks=4,
        nodes=2,
        tasks_per_node=[2, 2],
        gpus=2,
        launcher="srun",
        pmi="pmix",
        python="/venv/bin/python",
    )
    return Shape(**{**fields, **changes})


def _rank(rank: int, **changes) -> dict:
    host = f"node{1 + rank // 2}"
    report = {
        "phase": "done",
        "rank": rank,
        "local_rank": rank % 2,
        "world_size": 4,
        "host": host,
        "slurm_procid": str(rank),
        "cuda_visible_devices": str(rank % 2),
        "nvidia_driver": False,
        "python": "/venv/bin/python",
        "python_version": "3.11.7",
        "resolve": {"node1": {"addresses": ["10.0.0.1"]}, "node2": {"addresses": ["10.0.0.2"]}},
        "mpi": {"via": "mpi4py", "rank": rank, "size": 4, "sum": 6},
    }
    if rank % 2 == 0:
        report["env"] = {
            "tensorflow": "2.18.1",
            "horovod": "0.28.1",
            "horovod_mpi": True,
            "keras": "tf_keras 2.18.0",
            "legacy_keras_env": "1",
        }
    report["horovod_keras"] = {"keras": "tf_keras 2.18.0", "size": 4, "loss": 0.5}
    report.update(changes)
    return report


def _judge(shape: Shape, reports: dict[int, dict], other: JobResult | None = None) -> dict[str, Check]:
    primary = JobResult(launcher=shape.launcher, job_id="7", state="COMPLETED", exit_code=0, reports=reports)
    checks = doctor.evaluate(shape, Check("sbatch --test-only", PASS, "ok"), primary, other, mpi_list="pmix, pmi2")
    return {c.name: c for c in checks}


def test_report_of_a_healthy_job_passes():
    checks = _judge(_shape(), {r: _rank(r) for r in range(4)})
    assert {name: c.status for name, c in checks.items()} == {
        "sbatch --test-only": PASS,
        "doctor job": PASS,
        "ranks start": PASS,
        "MPI allreduce (srun --mpi=pmix)": PASS,
        "GPU visibility": PASS,
        "hostnames": PASS,
        "Python environment": PASS,
        "Keras": PASS,
    }
    keras = checks["Keras"].summary
    assert keras.startswith("tf.keras is tf_keras 2.18.0 in the tasks (keras='auto', TF_USE_LEGACY_KERAS=1)")
    assert "Horovod's Keras layer trains on 4 ranks" in keras


def test_report_of_horovod_keras_layer_failures_warns_with_the_cause():
    unpatched = {
        r: _rank(r, horovod_keras={"error": "AttributeError: module 'keras.backend' has no attribute 'get_value'"})
        for r in range(4)
    }
    keras = _judge(_shape(), unpatched)["Keras"]
    assert keras.status == WARN and "rank 0: Horovod's Keras layer: AttributeError" in keras.summary
    assert "scripts/horovod-patches" in keras.advice
    keras3 = {
        r: _rank(
            r,
            horovod_keras={
                "error": (
                    "TypeError: Trainer.compile() got an unexpected keyword argument 'experimental_run_tf_function'"
                )
            },
        )
        for r in range(4)
    }
    for rank in (0, 2):
        keras3[rank]["env"].update(keras="keras 3.6.0", legacy_keras_env=None)
    keras = _judge(_shape(), keras3)["Keras"]
    assert keras.status == WARN and keras.summary.startswith(
        "tf.keras is keras 3.6.0 in the tasks (keras='auto', TF_USE_LEGACY_KERAS unset)"
    )
    assert "tf-keras is not installed in the job's Python" in keras.details[0]
    assert "pip install --no-deps 'tf-keras~=2.18.0'" in keras.advice and "needs tf-keras (Keras 2)" in keras.advice
    died = {r: _rank(r) for r in range(4)}
    died[3].update(phase="keras", horovod_keras=None)
    assert "ranks 3 died or hung" in _judge(_shape(), died)["Keras"].summary
    # Keras 3 by the user's choice: the probe does not try Horovod's Keras layer, no warning.
    assert "--keras" not in doctor.probe_arguments(_shape(keras="3"), "srun", full=True)
    chosen = {r: _rank(r, horovod_keras=None) for r in range(4)}
    for rank in (0, 2):
        chosen[rank]["env"].update(keras="keras 3.6.0", legacy_keras_env="0")
    keras = _judge(_shape(keras="3"), chosen)["Keras"]
    assert keras.status == PASS and "Horovod's Keras layer not tried" in keras.summary


def test_missing_mpi_modules_are_an_install_problem_not_pmi():
    error = (
        "neither mpi4py (No module named 'mpi4py') nor Horovod could run an allreduce: "
        "ModuleNotFoundError: No module named 'horovod'"
    )
    mpi = _judge(_shape(), {r: _rank(r, mpi={"error": error}) for r in range(4)})["MPI allreduce (srun --mpi=pmix)"]
    assert mpi.status == FAIL
    assert "has no horovod and no mpi4py, so no rank could run MPI: install mpi4py" in mpi.advice
    assert "PMIx" not in mpi.advice and "--pmi" not in mpi.advice


def test_report_finds_shared_gpus_singleton_mpi_missing_ranks_and_mixed_versions():
    reports = {
        r: _rank(r, cuda_visible_devices="0", mpi={"via": "mpi4py", "rank": 0, "size": 1, "sum": 0}) for r in range(3)
    }
    reports[2]["env"] = {"tensorflow": "2.15.0", "horovod": "0.28.1", "horovod_mpi": True}
    other = JobResult(
        launcher="mpirun", job_id="8", state="COMPLETED", exit_code=0, reports={r: _rank(r) for r in range(4)}
    )
    checks = _judge(_shape(), reports, other)
    assert checks["ranks start"].status == FAIL and "missing: 3" in checks["ranks start"].summary
    mpi = checks["MPI allreduce (srun --mpi=pmix)"]
    assert mpi.status == FAIL and "size 1" in mpi.advice and "--launcher mpirun" in mpi.advice
    assert checks["MPI allreduce (mpirun)"].status == PASS
    gpu = checks["GPU visibility"]
    assert gpu.status == FAIL and "node1: ranks 0, 1 share GPU 0" in gpu.details
    env = checks["Python environment"]
    assert env.status == FAIL and any("nodes differ" in d for d in env.details)


def test_report_of_a_failing_other_launcher_only_warns_and_unresolvable_names_fail():
    reports = {r: _rank(r) for r in range(4)}
    reports[3]["resolve"] = {
        "node1": {"error": "[Errno -2] Name or service not known"},
        "node2": {"addresses": ["10.0.0.2"]},
    }
    other = JobResult(
        launcher="mpirun",
        job_id="8",
        state="FAILED",
        exit_code=1,
        logs={"8_0_log.err": "bash: line 1: mpirun: command not found"},
    )
    checks = _judge(_shape(), reports, other)
    assert checks["MPI allreduce (srun --mpi=pmix)"].status == PASS
    warned = checks["MPI allreduce (mpirun)"]
    assert warned.status == WARN and "mpirun is not on PATH in the job" in warned.advice
    names = checks["hostnames"]
    assert names.status == FAIL and "node1 does not resolve on node2 (rank 3)" in names.summary
    assert "DNS or /etc/hosts" in names.advice


def test_report_of_ps_ports_and_gpu_roles():
    shape = _shape(
        backend="ps",
        tasks=3,
        tasks_per_node=[2, 1],
        gpus=1,
        roles=[("ps", 0), ("worker", 0), ("worker", 1)],
        port_base=3000,
    )
    reports = {}
    for rank in range(3):
        rep = _rank(
            rank,
            world_size=3,
            host="node1" if rank < 2 else "node2",
            mpi=None,
            cuda_visible_devices="" if rank == 0 else "0",
        )
        rep["ports"] = {
            "address": f"{rep['host']}:{3000 + rank}",
            "listen_error": None,
            "reached": {f"x:{3000 + p}": None for p in range(3) if p != rank},
        }
        rep["env"] = {"tensorflow": "2.18.1"}
        reports[rank] = rep
    reports[2]["ports"]["reached"]["x:3000"] = "[Errno 111] Connection refused"
    checks = _judge(shape, reports)
    assert checks["GPU visibility"].status == PASS
    ports = checks["TF_CONFIG ports"]
    assert ports.status == FAIL and "worker/1 (rank 2) on node2 cannot reach x:3000" in ports.summary
    assert "firewall" in ports.advice and "3000-3002" in ports.advice
    assert checks["Python environment"].status == PASS


def _het_reports(broken: dict[int, str] | None = None) -> tuple[Shape, dict[int, dict]]:
    """2 ps on node1 (cpu) + chief and 2 workers on node2, node3 (gpu), as a het job reports."""
    roles = [("ps", 0), ("ps", 1), ("chief", 0), ("worker", 0), ("worker", 1)]
    hosts = ["node1", "node1", "node2", "node2", "node3"]
    shape = _shape(
        backend="ps",
        tasks=5,
        nodes=3,
        tasks_per_node=[2, 2, 1],
        gpus=2,
        roles=roles,
        port_base=3000,
        het_partitions=["cpu", "gpu"],
    )
    groups = [
        {"partition": "cpu", "nodelist": "node1", "nodes": ["node1"]},
        {"partition": "gpu", "nodelist": "node[2-3]", "nodes": ["node2", "node3"]},
    ]
    addresses = [f"{h}:{3000 + r}" for r, h in enumerate(hosts)]
    cluster = {"ps": addresses[:2], "chief": addresses[2:3], "worker": addresses[3:]}
    reports = {}
    for rank, (role, host) in enumerate(zip(roles, hosts)):
        rep = _rank(
            rank,
            world_size=5,
            host=host,
            mpi=None,
            local_rank=0 if rank in (0, 2, 4) else 1,
            cuda_visible_devices="" if role[0] == "ps" else str(rank % 2),
            het_groups=groups,
            tf_config={"cluster": cluster, "task": {"type": role[0], "index": role[1]}},
        )
        rep["ports"] = {
            "address": addresses[rank],
            "listen_error": None,
            "reached": {
                a: (broken or {}).get(rank) if a in cluster["ps"] else None for a in addresses if a != addresses[rank]
            },
        }
        rep["env"] = {"tensorflow": "2.18.1"}
        rep["resolve"] = {n: {"addresses": [f"10.0.0.{n[-1]}"]} for n in ("node1", "node2", "node3")}
        reports[rank] = rep
    return shape, reports


def test_report_of_a_heterogeneous_job_checks_partitions_and_reach_across_them():
    shape, reports = _het_reports()
    checks = _judge(shape, reports)
    assert checks["partitions"].status == PASS, checks["partitions"]
    assert checks["partitions"].summary == (
        "parameter servers on node1 (cpu); chief and workers on node2, node3 (gpu): "
        "each task on a node of its own partition"
    )
    reach = checks["ps across partitions"]
    assert (
        reach.status == PASS and "3 chief/worker task(s) in gpu reach all 2 parameter server(s) in cpu" in reach.summary
    )
    assert checks["ranks start"].status == PASS and checks["GPU visibility"].status == PASS
    names = list(checks)
    assert names.index("partitions") < names.index("GPU visibility") < names.index("ps across partitions")


def test_a_worker_that_cannot_reach_a_ps_across_partitions_fails_with_advice():
    shape, reports = _het_reports(broken={3: "timed out"})
    checks = _judge(shape, reports)
    reach = checks["ps across partitions"]
    assert reach.status == FAIL
    assert (
        reach.summary
        == "worker/0 (rank 3) on node2 (gpu) cannot reach parameter server node1:3000 (cpu): timed out (+1 more)"
    )
    assert len(reach.details) == 2  # both parameter servers
    assert "nodes of gpu cannot connect to the parameter servers' nodes in cpu on ports 3000-3004" in reach.advice
    assert "--port-base" in reach.advice and "--ps-partition" in reach.advice
    assert checks["partitions"].status == PASS and checks["TF_CONFIG ports"].status == FAIL


def test_a_task_off_its_components_nodes_or_partition_fails_the_partitions_check():
    shape, reports = _het_reports()
    reports[4]["host"] = "node1"  # a worker on the parameter servers' node
    check = _judge(shape, reports)["partitions"]
    assert check.status == FAIL and "worker/1 (rank 4) on node1 is not on a node of its component 1" in check.summary
    assert "srun --het-group=0,1" in check.advice
    shape, reports = _het_reports()
    for rep in reports.values():
        rep["het_groups"] = [dict(rep["het_groups"][0], partition="debug"), rep["het_groups"][1]]
    check = _judge(shape, reports)["partitions"]
    assert check.status == FAIL and "is in partition debug, expected cpu" in check.summary
    assert "--ps-partition" in check.advice
    shape, reports = _het_reports()
    for rep in reports.values():
        rep["het_groups"] = None
    check = _judge(shape, reports)["partitions"]
    assert check.status == FAIL and "not in a heterogeneous job step" in check.summary


def test_heterogeneous_shape_from_the_spec(make_spec):
    spec = make_spec(
        distributed_backend="ps",
        parameter_server_count=2,
        worker_count=2,
        chief=True,
        node_count=2,
        ps_partition="cpu",
        partition="gpu",
    )
    shape = Shape.from_spec(spec, "python3")
    assert shape.roles == [("ps", 0), ("ps", 1), ("chief", 0), ("worker", 0), ("worker", 1)]
    assert (shape.nodes, shape.tasks_per_node, shape.het_partitions) == (3, [2, 2, 1], ["cpu", "gpu"])
    assert shape.component(0) == 0 and shape.component(2) == 1
    plain = Shape.from_spec(spec.with_changes(ps_partition=None), "python3")
    assert plain.het_partitions is None and plain.component(0) is None and plain.nodes == 2
