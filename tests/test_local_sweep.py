"""Sweeps on the local target: a supervisor runs the job array on this machine.

Real processes, no Slurm: the supervisor alone on small scripts (the environment each
element gets, how many run at once, how the array ends), then whole sweeps of
tests/programs/sweep_objective.py (score = 1 - (x - 0.3)^2 - (y - 0.6)^2) through the CLI
and the Python API: random, grid, cancelled, Horovod-style MPI and parameter-server trials.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hpctf
from hpctf.errors import HpctfError
from hpctf.executors.local.array import DEFAULT_PARALLEL, element_fields, read_element
from hpctf.executors.local.handle import session_members
from hpctf.executors.local.launch import PID_FILE

from .recorded import private_home

PROGRAMS = Path(__file__).resolve().parent / "programs"
HPCTF = str(Path(sys.executable).with_name("hpctf"))
SWEEP_S = 180  # the longest a sweep below may take


@pytest.fixture
def home(tmp_path, monkeypatch):
    return private_home(tmp_path, monkeypatch)


@pytest.fixture
def project(tmp_path) -> Path:
    src = tmp_path / "project"
    src.mkdir()
    for name in ("sweep_objective.py", "ps_probe.py"):
        shutil.copy(PROGRAMS / name, src / name)
    (src / "ps_trial.py").write_text(
        "import runpy, sys\n"
        "import hpctf\n"
        "# every task logs --x as its score, then probes the parameter-server wiring\n"
        "hpctf.log_metric('score', float(sys.argv[sys.argv.index('--x') + 1]), 0)\n"
        "sys.argv = sys.argv[:1]\n"
        "runpy.run_path('ps_probe.py', run_name='__main__')\n"
    )
    return src


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPCTF_HOME": str(home)}
    env.pop("SLURM_CONF", None)
    return subprocess.run([HPCTF, *args], capture_output=True, text=True, env=env, timeout=timeout)


def submit_sweep(home: Path, *args: str) -> tuple[str, Path]:
    done = cli(home, "sweep", "--target", "local", "--json", *args)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    return record["job_id"], Path(record["run_dir"])


def status(home: Path, job_id: str) -> dict:
    done = cli(home, "sweep", "status", job_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_sweep(home: Path, job_id: str) -> dict:
    deadline = time.monotonic() + SWEEP_S
    while True:
        seen = status(home, job_id)
        if seen["state"] not in ("PENDING", "RUNNING"):
            return seen
        assert time.monotonic() < deadline, f"sweep {job_id} still {seen['state']} after {SWEEP_S}s: {seen}"
        time.sleep(1)


def intervals(log_dir: Path, job_id: str, size: int) -> list[tuple[float, float]]:
    """Each element's (start, end), as its supervisor recorded them."""
    out = []
    for index in range(size):
        kept = read_element(log_dir, job_id, index)
        assert kept is not None and kept.get("end"), f"element {index}: {kept}"
        out.append((kept["start"], kept["end"]))
    return out


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = top = 0
    for _, step in events:  # at a tie an end (-1) sorts before a start (+1)
        now += step
        top = max(top, now)
    return top


def score(params: dict) -> float:
    return 1 - (params["x"] - 0.3) ** 2 - (params.get("y", 0.6) - 0.6) ** 2


# -- the supervisor alone, on a small script ----------------------------------------------


ELEMENT_SCRIPT = """\
trap 'printf "%s\\n" "$?" >"$LOGS/${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}_exitcode"' EXIT
echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT $SLURM_JOB_ID"
sleep 0.3
[ "$SLURM_ARRAY_TASK_ID" != "{fail}" ]
"""


def run_supervisor(tmp_path: Path, trials: int, parallel: int | None, fail: int = -1) -> tuple[int, Path]:
    """``python -m hpctf.executors.local.array`` on ELEMENT_SCRIPT, in ``tmp_path``: its exit code, its log folder."""
    logs = tmp_path / "logs"
    logs.mkdir()
    script = tmp_path / "element.sh"
    script.write_text(ELEMENT_SCRIPT.replace("{fail}", str(fail)))
    command = [sys.executable, "-m", "hpctf.executors.local.array", str(script), "--job-id", "L00ab00"]
    command += ["--log-dir", str(logs), "--trials", str(trials)]
    command += [] if parallel is None else ["--parallel", str(parallel)]
    done = subprocess.run(command, cwd=tmp_path, env={**os.environ, "LOGS": str(logs)}, timeout=60)
    return done.returncode, logs


def test_supervisor_runs_each_element_once_with_slurms_array_environment(tmp_path):
    code, logs = run_supervisor(tmp_path, trials=5, parallel=2)
    assert code == 0
    seen = [(logs / f"L00ab00_{i}_0_log.out").read_text().split() for i in range(5)]
    assert [s[:3] for s in seen] == [["L00ab00", str(i), "5"] for i in range(5)]
    assert len({s[3] for s in seen}) == 5 and all(s[3].isdigit() for s in seen)  # SLURM_JOB_ID: a number each
    assert most_at_once(intervals(logs, "L00ab00", 5)) == 2
    assert (logs / "L00ab00_exitcode").read_text() == "0\n"
    fields = element_fields(logs, "L00ab00", 5, over=True, cancelled=False)
    assert {f["State"] for f in fields.values()} == {"COMPLETED"}
    assert all(f["ExitCode"] == "0:0" and f["Start"] <= f["End"] for f in fields.values())


def test_supervisor_default_is_one_at_a_time_and_a_failed_element_fails_the_array(tmp_path):
    code, logs = run_supervisor(tmp_path, trials=3, parallel=None, fail=1)
    assert DEFAULT_PARALLEL == 1
    assert code == 1 and (logs / "L00ab00_exitcode").read_text() == "1\n"
    assert most_at_once(intervals(logs, "L00ab00", 3)) == 1
    fields = element_fields(logs, "L00ab00", 3, over=True, cancelled=False)
    assert [fields[i]["State"] for i in range(3)] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert fields[1]["ExitCode"] == "1:0"


def test_element_fields_when_the_supervisor_is_gone(tmp_path):
    """Killed with its supervisor (kill -9): the element's own exit-status file, else
    CANCELLED after a cancel, FAILED otherwise; never left pending or running."""
    logs = tmp_path
    (logs / "L1_0_element.json").write_text(json.dumps({"state": "RUNNING", "start": time.time()}))
    (logs / "L1_0_exitcode").write_text("0\n")
    (logs / "L1_1_element.json").write_text(json.dumps({"state": "RUNNING", "start": time.time()}))
    live = element_fields(logs, "L1", 3, over=False, cancelled=False)
    assert [live[i]["State"] for i in range(3)] == ["RUNNING", "RUNNING", "PENDING"]
    gone = element_fields(logs, "L1", 3, over=True, cancelled=False)
    assert [gone[i]["State"] for i in range(3)] == ["COMPLETED", "FAILED", "FAILED"]
    cancelled = element_fields(logs, "L1", 3, over=True, cancelled=True)
    assert [cancelled[i]["State"] for i in range(3)] == ["COMPLETED", "CANCELLED", "CANCELLED"]


def test_a_fixed_port_base_is_refused_for_parallel_ps_trials(project):
    spec = hpctf.TensorFlow(
        source_directory=project,
        entry_script="ps_trial.py",
        compute_target="local",
        distributed_backend="ps",
        node_count=2,
        parameter_server_count=1,
        worker_count=1,
        port_base=23000,
    )
    sweep = hpctf.Sweep(spec, {"x": "uniform(0, 1)"}, metric="score", trials=2, parallel=2)
    with pytest.raises(HpctfError, match="port_base=23000 with a sweep of 2 trials at once"):
        sweep.submit()


# -- whole sweeps ---------------------------------------------------------------------------


def test_random_sweep_runs_at_most_parallel_trials_and_names_the_best(home, project):
    job_id, run_dir = submit_sweep(
        home,
        *("--param", "x=uniform(0,1)", "--metric", "score", "--goal", "max", "--trials", "6", "--parallel", "2"),
        str(project / "sweep_objective.py"),
        *("--sleep", "0.3"),
    )
    seen = wait_sweep(home, job_id)
    assert seen["state"] == "COMPLETED", seen
    trials = seen["trials"]
    assert sorted(t["index"] for t in trials) == list(range(6))
    assert all(t["state"] == "COMPLETE" for t in trials), trials
    for trial in trials:
        assert trial["value"] == pytest.approx(score(trial["params"]))
        assert trial["duration"] is not None and trial["duration"] >= 0
    assert most_at_once(intervals(run_dir / "logs", job_id, 6)) == 2
    best = json.loads(cli(home, "sweep", "best", job_id, "--json").stdout)
    top = max(trials, key=lambda t: t["value"])
    assert (best["job_id"], best["value"], best["outputs"]) == (top["job_id"], top["value"], ["model.txt"])
    listing = json.loads(cli(home, "ls", "--json").stdout)
    assert [(r["job_id"], r["state"], r["exit_code"]) for r in listing] == [(job_id, "COMPLETED", 0)]
    out = (run_dir / "logs" / f"{job_id}_{top['index']}_0_log.out").read_text()
    assert f"trial={top['index']}" in out  # the element's output, where %A_%a_0_log.out names it


def test_grid_runs_exactly_its_combinations(home, project):
    spec = hpctf.TensorFlow(
        source_directory=project, entry_script="sweep_objective.py", compute_target="local", arguments=["--steps", "1"]
    )
    space = {"x": "choice(0.1, 0.3, 0.5)", "y": "choice(0.2, 0.6)"}
    run = hpctf.Sweep(spec, space, metric="score", goal="max", sampler="grid", parallel=3).submit()
    run.wait(poll_s=1)
    trials = run.trials()
    assert str(run.state) == "COMPLETED"
    assert len(trials) == 6 and all(t.state == "COMPLETE" for t in trials)
    assert sorted((t.params["x"], t.params["y"]) for t in trials) == [
        (x, y) for x in (0.1, 0.3, 0.5) for y in (0.2, 0.6)
    ]
    assert run.best().params == {"x": 0.3, "y": 0.6} and run.best().value == pytest.approx(1.0)
    assert most_at_once(intervals(run.folder / "logs", run.job_id, 6)) <= 3


def test_cancel_mid_sweep_stops_everything_and_starts_nothing(home, project):
    job_id, run_dir = submit_sweep(
        home,
        *("--param", "x=uniform(0,1)", "--metric", "score", "--trials", "6", "--parallel", "2"),
        str(project / "sweep_objective.py"),
        *("--steps", "600", "--sleep", "0.1"),
    )
    logs = run_dir / "logs"
    deadline = time.monotonic() + 60
    while not all((logs / f"{job_id}_{i}_0_log.out").exists() for i in (0, 1)) or not all(
        "TRIAL" in (logs / f"{job_id}_{i}_0_log.out").read_text() for i in (0, 1)
    ):
        assert time.monotonic() < deadline, "the first two trials never started"
        time.sleep(0.2)
    assert [t["state"] for t in sorted(status(home, job_id)["trials"], key=lambda t: t["index"])] == [
        "RUNNING",
        "RUNNING",
        *["PENDING"] * 4,
    ]
    sid = int((run_dir / PID_FILE).read_text())
    done = cli(home, "cancel", job_id)
    assert done.returncode == 0, done.stderr
    assert session_members(sid) == []
    time.sleep(2)  # long enough for a third element to have started, had one been going to
    seen = status(home, job_id)
    assert seen["state"] == "CANCELLED"
    assert {t["state"] for t in seen["trials"]} == {"CANCELLED"}
    assert not any((logs / f"{job_id}_{i}_0_log.out").exists() for i in range(2, 6))
    assert [read_element(logs, job_id, i)["state"] for i in range(6)] == ["CANCELLED"] * 6
    assert all("start" not in read_element(logs, job_id, i) for i in range(2, 6))


def test_mpi_trials_of_two_ranks(home, project):
    job_id, run_dir = submit_sweep(
        home,
        *("--backend", "mpi", "--procs-per-node", "2"),
        *("--param", "x=uniform(0,1)", "--metric", "score", "--goal", "max", "--trials", "2", "--parallel", "2"),
        str(project / "sweep_objective.py"),
    )
    seen = wait_sweep(home, job_id)
    assert seen["state"] == "COMPLETED" and {t["state"] for t in seen["trials"]} == {"COMPLETE"}, seen
    for trial in seen["trials"]:
        assert trial["value"] == pytest.approx(score(trial["params"]))
        for rank in (0, 1):  # each rank's output in its own file, as srun names them
            log = run_dir / "logs" / f"{job_id}_{trial['index']}_{rank}_log.out"
            assert f"trial={trial['index']}" in log.read_text()


def test_concurrent_ps_trials_listen_on_ports_of_their_own(home, project):
    job_id, run_dir = submit_sweep(
        home,
        *("--backend", "ps", "--nodes", "3", "--ps", "1", "--workers", "2", "--chief"),
        *("--param", "x=uniform(0,1)", "--metric", "score", "--goal", "max", "--trials", "2", "--parallel", "2"),
        str(project / "ps_trial.py"),
    )
    seen = wait_sweep(home, job_id)
    assert seen["state"] == "COMPLETED" and {t["state"] for t in seen["trials"]} == {"COMPLETE"}, seen
    assert most_at_once(intervals(run_dir / "logs", job_id, 2)) == 2
    ports = {}
    for index in (0, 1):
        for log in (run_dir / "logs").glob(f"{job_id}_{index}_*_log.out"):
            for line in log.read_text().splitlines():
                if "PROBE " in line:
                    ports.setdefault(index, set()).add(json.loads(line.split("PROBE ", 1)[1])["listening"])
    assert len(ports[0]) == len(ports[1]) == 4
    assert not ports[0] & ports[1]
