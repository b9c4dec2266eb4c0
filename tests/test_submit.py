"""Submit and track real jobs on the test cluster: CLI and the Python (submitit) API."""

from __future__ import annotations

import json
import pickle
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import submitit
from submitit.core.utils import FailedJobError

import hpctf
from hpctf.registry import Registry
from hpctf.states import JobState

pytestmark = pytest.mark.slurm

PROGRAMS = Path(__file__).resolve().parent / "programs"
HPCTF = str(Path(sys.executable).with_name("hpctf"))


@pytest.fixture
def project(tmp_path) -> Path:
    src = tmp_path / "project"
    src.mkdir()
    for name in (
        "hello.py",
        "fail.py",
        "ticker.py",
        "mpi_probe.py",
        "ps_probe.py",
        "snapshot_probe.py",
        "rank_fail.py",
    ):
        shutil.copy(PROGRAMS / name, src / name)
    return src


def cli(slurm, home: Path, *args: str, timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**slurm.env, "HPCTF_HOME": str(home)}
    return subprocess.run([HPCTF, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


def submit_json(slurm, home, *args: str) -> dict:
    done = cli(slurm, home, "submit", "--json", "--time", "5", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[0])


def status_json(slurm, home, job_id: str) -> dict:
    done = cli(slurm, home, "status", "--json", job_id)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_state(slurm, home, job_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = status_json(slurm, home, job_id)
        if info["state"] in states:
            return info
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {states}: {info}")


@pytest.mark.parametrize(
    "options, program",
    [
        ([], "hello.py"),
        (["--backend", "mpi", "--nodes", "2", "--procs-per-node", "2"], "mpi_probe.py"),
        (["--backend", "mpi", "--launcher", "mpirun", "--nodes", "2", "--procs-per-node", "2"], "mpi_probe.py"),
        (
            ["--backend", "ps", "--nodes", "3", "--ps", "1", "--workers", "2", "--chief"],
            "ps_probe.py",
        ),  # the job's own ports
    ],
    ids=["single", "mpi-srun", "mpi-mpirun", "ps"],
)
def test_submit_each_backend_and_wait(slurm, home, project, options, program):
    done = cli(slurm, home, "submit", "--wait", "--time", "5", *options, str(project / program))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    job_id = done.stdout.split("Submitted job ", 1)[1].split()[0]
    assert f"job {job_id} COMPLETED (exit code 0)" in done.stderr
    assert "PROBE" in done.stdout  # task 0's log was streamed
    info = status_json(slurm, home, job_id)
    assert (info["state"], info["exit_code"]) == ("COMPLETED", 0)
    assert info["nodes"]


def test_failing_job_reports_failed_and_exit_code_cli_and_api(slurm, home, project):
    done = cli(slurm, home, "submit", "--wait", str(project / "fail.py"), "3")
    assert done.returncode == 3, done.stderr
    job_id = done.stdout.split("Submitted job ", 1)[1].split()[0]
    info = status_json(slurm, home, job_id)
    assert (info["state"], info["exit_code"]) == ("FAILED", 3)

    job = hpctf.submit(hpctf.TensorFlow(source_directory=project, entry_script="fail.py", arguments=["4"]))
    assert job.result() == 4
    assert job.state == JobState.FAILED == "FAILED"
    assert "about to exit 4" in job.stdout()
    error = job.exception()  # submitit's contract: returned, not raised
    assert isinstance(error, FailedJobError)
    assert f"job {job.job_id} ended FAILED with exit code 4; task 0 failed first, with exit code 4" in str(error)


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_failing_rank_stops_the_job_with_its_own_exit_code(slurm, home, project, launcher):
    done = cli(
        slurm,
        home,
        "submit",
        "--wait",
        "--backend",
        "mpi",
        "--launcher",
        launcher,
        "--nodes",
        "2",
        "--procs-per-node",
        "2",
        str(project / "rank_fail.py"),
        timeout=120,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    job_id = done.stdout.split("Submitted job ", 1)[1].split()[0]
    info = status_json(slurm, home, job_id)
    assert (info["state"], info["exit_code"]) == ("FAILED", 3)
    assert "rank 1 fails with exit code 3" in cli(slurm, home, "logs", job_id, "--task", "1", "--err").stdout


def test_python_api_handle_pickles_and_attaches_in_a_new_process(slurm, home, project, tmp_path):
    est = hpctf.TensorFlow(source_directory=project, entry_script="hello.py", script_params={"--who": "notebook"})
    job = hpctf.submit(est)
    assert isinstance(job, submitit.SlurmJob)
    blob = tmp_path / "job.pkl"
    blob.write_bytes(pickle.dumps(job))
    assert job.result() == 0 and job.done() and job.state == "COMPLETED"
    assert '"argv": ["--who", "notebook"]' in job.stdout()
    assert job.stderr() is not None

    code = (
        "import pickle, sys, hpctf\n"
        f"job = hpctf.attach({job.job_id!r})\n"
        "print(job.state, job.result(), 'notebook' in job.stdout())\n"
        f"old = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        "print(old.job_id == job.job_id, old.result())\n"
    )
    env = {**slurm.env, "HPCTF_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["COMPLETED", "0", "True", "True", "0"]


def test_multi_task_handle_reaches_every_task_fresh_attached_and_unpickled(slurm, home, project, tmp_path):
    est = hpctf.TensorFlow(
        source_directory=project,
        entry_script="mpi_probe.py",
        distributed_backend="mpi",
        node_count=2,
        process_count_per_node=2,
        time="5",
    )
    job = hpctf.submit(est)
    assert job.num_tasks == 4
    blob = tmp_path / "job.pkl"
    blob.write_bytes(pickle.dumps(job))
    assert job.result() == 0

    def ranks(handle) -> list[int]:
        return [
            json.loads(handle.task(t).stdout().split("PROBE ", 1)[1].splitlines()[0])["hpctf_rank"] for t in range(4)
        ]

    assert ranks(job) == [0, 1, 2, 3]
    assert job.exception() is None and job.task(2).exception() is None and job.results() == [0, 0, 0, 0]
    assert job.stdout().count("PROBE ") == 4  # submitit's meta-job: every task's output
    with pytest.raises(ValueError, match="task_id 4 must be between 0 and 3"):
        job.task(4)
    code = (
        "import json, pickle, hpctf\n"
        "def ranks(h): return [json.loads(h.task(t).stdout().split('PROBE ', 1)[1].splitlines()[0])['hpctf_rank'] "
        "for t in range(h.num_tasks)]\n"
        f"attached = hpctf.attach({job.job_id!r})\n"
        f"old = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        "print(json.dumps([ranks(attached), ranks(old), attached.task(3).state, old.results()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**slurm.env, "HPCTF_HOME": str(home)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[0, 1, 2, 3], [0, 1, 2, 3], "COMPLETED", [0, 0, 0, 0]]


def test_pending_job_says_pending_and_why(slurm, home, project):
    """Right after submit a job is PENDING, not UNKNOWN (accounting lags sbatch); while it
    waits, `submit --wait` shows Slurm's reason and expected start."""
    job = hpctf.submit(
        hpctf.TensorFlow(source_directory=project, entry_script="hello.py", sbatch_options={"begin": "now+600"})
    )
    try:
        assert job.state == JobState.PENDING == "PENDING"
        deadline = time.monotonic() + 30
        while "State" not in job.watcher.get_info(job.job_id, mode="force") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job.state == "PENDING" and job.info["State"] == "PENDING"  # now from sacct
    finally:
        job.cancel()
    env = {**slurm.env, "HPCTF_HOME": str(home)}
    waiting = subprocess.Popen(
        [HPCTF, "submit", "--wait", "--sbatch", "begin=now+600", str(project / "hello.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in waiting.stderr], daemon=True).start()
    job_id = waiting.stdout.readline().split("Submitted job ", 1)[1].split()[0]
    try:
        reason = lines.get(timeout=30)
        assert re.fullmatch(
            rf"job {job_id}: pending \(BeginTime\), expected to start at \d\d:\d\d:\d\d \(in (9:[0-5]\d|10:00)\)\n",
            reason,
        ), reason
        time.sleep(6)  # past one poll of squeue: the same reason is not written again
        assert lines.empty(), lines.get()
    finally:
        subprocess.run(["scancel", job_id], env=env, timeout=30)
        waiting.wait(timeout=60)
    rest = "".join(lines.get() for _ in range(lines.qsize()))
    assert (
        waiting.returncode == 1
        and f"job {job_id} CANCELLED (stopped by scancel or hpctf cancel; hpctf exits 1)" in rest
    ), rest


def test_follow_logs_while_running(slurm, home, project):
    job_id = submit_json(slurm, home, str(project / "ticker.py"), "6", "0.5")["job_id"]
    wait_state(slurm, home, job_id, {"RUNNING", "COMPLETED"})
    done = cli(slurm, home, "logs", job_id, "--follow", timeout=120)
    assert done.returncode == 0, done.stderr
    assert [f"tick {i}" for i in range(6)] + ["ticker done"] == done.stdout.split("\n")[:7]
    assert status_json(slurm, home, job_id)["state"] == "COMPLETED"


def wait_log(slurm, home, job_id: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (out := cli(slurm, home, "logs", job_id).stdout):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never wrote {text!r}: {out[-500:]!r}")
        time.sleep(0.5)


def test_cancel_a_running_job(slurm, home, project):
    job_id = submit_json(slurm, home, str(project / "ticker.py"), "600", "1")["job_id"]
    # RUNNING comes before the task's Python has started: wait for its first line, so the
    # cancel stops a program that runs (and the log shows it did).
    wait_log(slurm, home, job_id, "tick 0")
    done = cli(slurm, home, "cancel", job_id)
    assert done.returncode == 0 and f"cancelled job {job_id}" in done.stdout, done.stderr
    info = wait_state(slurm, home, job_id, {"CANCELLED"}, timeout=60)
    # scancel's SIGTERM: the script's trap ends it with 143 (128 + 15).
    assert info["exit_code"] == 143, info
    assert "tick 0" in cli(slurm, home, "logs", job_id).stdout


def test_history_survives_a_new_process_and_unknown_ids_are_clear(slurm, home, project):
    first = submit_json(slurm, home, "--job-name", "first run", str(project / "hello.py"))["job_id"]
    second = submit_json(slurm, home, "--backend", "mpi", "--nodes", "2", str(project / "mpi_probe.py"))["job_id"]
    for job_id in (first, second):
        wait_state(slurm, home, job_id, {"COMPLETED"})
    listing = json.loads(cli(slurm, home, "ls", "--json").stdout)
    assert [(r["job_id"], r["name"], r["backend"], r["shape"], r["state"]) for r in listing] == [
        (second, "mpi_probe", "mpi", "2x1", "COMPLETED"),
        (first, "first run", "single", "1x1", "COMPLETED"),
    ]
    assert all(r["duration"] is not None and r["submitted"] for r in listing)
    table = cli(slurm, home, "ls")
    assert table.returncode == 0 and "first run" in table.stdout and "COMPLETED" in table.stdout

    missing = cli(slurm, home, "status", "999999")
    assert missing.returncode == 2 and "no run with job id '999999'" in missing.stderr
    no_log = cli(slurm, home, "logs", first, "--task", "7")
    assert no_log.returncode == 2 and "no log for task 7" in no_log.stderr


def test_code_snapshot_is_immutable(slurm, home, project):
    (project / "helper.py").write_text("VALUE = 'original'\n")
    (project / "data.txt").write_text("original data\n")
    (project / "big.bin").write_bytes(b"x" * 1024)
    (project / ".hpctfignore").write_text("*.bin\n")
    record = submit_json(slurm, home, str(project / "snapshot_probe.py"), "4")
    # Edit the code and the data while the job waits to import them.
    (project / "helper.py").write_text("VALUE = 'edited'\n")
    (project / "data.txt").write_text("edited data\n")
    info = wait_state(slurm, home, record["job_id"], {"COMPLETED", "FAILED"})
    assert info["state"] == "COMPLETED"
    out = cli(slurm, home, "logs", record["job_id"]).stdout
    assert "helper says original; data says original data" in out
    code = Path(record["run_dir"]) / "code"
    assert (code / "helper.py").read_text() == "VALUE = 'original'\n"
    assert not (code / "big.bin").exists()


def test_snapshot_size_limit_is_a_clear_refusal(slurm, home, project):
    (project / "weights.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    done = cli(slurm, home, "submit", "--snapshot-limit-mb", "1", str(project / "hello.py"))
    assert done.returncode == 2
    assert (
        "above the 1 MB limit" in done.stderr and "weights.bin" in done.stderr and "--snapshot-limit-mb" in done.stderr
    )
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    assert cli(slurm, home, "submit", "--snapshot-limit-mb", "5", "--wait", str(project / "hello.py")).returncode == 0


def test_dry_run_submits_and_records_nothing(slurm, home, project):
    done = cli(slurm, home, "submit", "--dry-run", "--backend", "mpi", "--nodes", "2", str(project / "mpi_probe.py"))
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --nodes=2" in done.stdout and "would run `sbatch --parsable" in done.stderr
    assert not (home / "runs").exists()
    assert json.loads(cli(slurm, home, "ls", "--json").stdout) == []


def test_sbatch_refusal_leaves_no_run_and_no_record(slurm, home, project):
    done = cli(slurm, home, "submit", "--gpus-per-node", "3", str(project / "hello.py"))  # nodes have 2
    assert done.returncode == 2 and "sbatch refused the job" in done.stderr
    assert not any((home / "runs").iterdir())
    assert Registry(home / "registry.sqlite").count() == 0


def test_twenty_concurrent_submits_leave_twenty_records(slurm, home, project):
    def one(i: int) -> subprocess.CompletedProcess:
        return cli(slurm, home, "submit", "--json", "--job-name", f"c{i}", str(project / "hello.py"), str(i))

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    submitted = {json.loads(r.stdout)["job_id"]: json.loads(r.stdout) for r in results}
    assert len(submitted) == 20
    registry = Registry(home / "registry.sqlite")
    records = list(registry.runs())
    assert len(records) == 20
    assert {r.job_id for r in records} == set(submitted)
    assert {r.name for r in records} == {f"c{i}" for i in range(20)}
    assert all((Path(r.run_dir) / "job.sbatch").is_file() for r in records)

    # Tracking them all costs one scheduler call per refresh.
    from hpctf.executors.slurm.watch import SlurmRun
    from hpctf.runs import refresh

    before = SlurmRun.watcher.num_calls
    refresh(registry, records)
    assert SlurmRun.watcher.num_calls == before + 1
    for job_id in submitted:
        wait_state(slurm, home, job_id, {"COMPLETED"})
