"""Sweeps on the test cluster (issue 18): real job arrays, the study in the sweep folder,
the trials' metrics from hpctf.log_metric.

tests/programs/sweep_objective.py's score is a known function of its parameters (best at
x=0.3, y=0.6), so every trial's recorded value is checked against its parameters, and the
sweep's best against the true optimum.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from .training import HPCTF, hpctf_env

pytestmark = pytest.mark.slurm

PROGRAMS = Path(__file__).resolve().parent / "programs"
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
OBJECTIVE = str(PROGRAMS / "sweep_objective.py")


def score(x: float, y: float = 0.6, opt: str = "adam") -> float:
    """sweep_objective.py's final score."""
    return 1 - (x - 0.3) ** 2 - (y - 0.6) ** 2 - (0.1 if opt == "sgd" else 0.0)


def hpctf(slurm, home: Path, *args: str, ok: bool = True, timeout: float = 120, **env: str) -> str:
    done = subprocess.run(
        [HPCTF, *args], capture_output=True, text=True, env=hpctf_env(slurm, home, **env), timeout=timeout
    )
    assert (done.returncode == 0) == ok, f"{args}: {done.stderr}"
    return done.stdout if ok else done.stderr


def start_sweep(slurm, home: Path, *args: str, **env: str) -> dict:
    return json.loads(hpctf(slurm, home, "sweep", "--json", "--time", "10", *args, **env))


def status(slurm, home: Path, job_id: str) -> dict:
    return json.loads(hpctf(slurm, home, "sweep", "status", "--json", job_id))


def wait_for_sweep(slurm, home: Path, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = status(slurm, home, job_id)
        if found["state"] not in ("PENDING", "RUNNING"):
            return found
        time.sleep(2)
    raise AssertionError(f"sweep {job_id} still runs after {timeout}s: {found}")


def elements_sacct(slurm, job_id: str) -> dict[str, tuple[str, float, float]]:
    """sacct's view of the array's elements: id -> (state, start, end) in epoch seconds."""
    from hpctf.exits import slurm_time

    out = slurm.run("sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State,Start,End").stdout
    rows = {}
    for line in out.splitlines():
        element, state, start, end = line.split("|")
        rows[element] = (state, slurm_time(start), slurm_time(end))
    return rows


def trials_by_index(trials: list[dict]) -> dict[int, dict]:
    return {t["index"]: t for t in trials}


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_a_random_sweep_finds_the_optimum_three_at_a_time(slurm, home):
    """12 random trials over x, y in [0, 1], 3 at once: every value is the objective of its
    parameters, the best is within 0.05 of the true optimum's score (1.0, at x=0.3 y=0.6),
    and Slurm never ran more than 3 elements at once."""
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "x=uniform(0, 1)", "--param", "y=uniform(0, 1)", "--metric", "score", "--goal", "max"),
        *("--trials", "12", "--parallel", "3", OBJECTIVE, "--steps", "3"),
    )
    job_id = sweep["job_id"]
    found = wait_for_sweep(slurm, home, job_id)
    assert found["state"] == "COMPLETED"
    trials = found["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 12
    assert sorted(t["job_id"] for t in trials) == sorted(f"{job_id}_{i}" for i in range(12))
    for trial in trials:
        assert trial["value"] == pytest.approx(score(trial["params"]["x"], trial["params"]["y"]), abs=1e-9)
    values = [t["value"] for t in trials]
    assert values == sorted(values, reverse=True)  # best first
    assert values[0] >= 0.95, "12 random draws came within 0.05 of the optimum's score"
    best = json.loads(hpctf(slurm, home, "sweep", "best", "--json", job_id))
    assert best["job_id"] == trials[0]["job_id"] and best["outputs"] == ["model.txt"]
    model = Path(best["run_dir"], "outputs", "model.txt").read_text()
    assert model == f"x={best['params']['x']} y={best['params']['y']}\n"
    # An element's logs by its own id.
    assert "TRIAL x=" in hpctf(slurm, home, "logs", f"{job_id}_1")
    said = hpctf(slurm, home, "logs", "--err", f"{job_id}_1")
    assert f"trial 1: score={trials_by_index(trials)[1]['value']:.6g}" in said
    # One line in `hpctf ls`, and at most 3 elements at once.
    ls = json.loads(hpctf(slurm, home, "ls", "--json"))
    assert [(r["job_id"], r["state"], r["shape"]) for r in ls] == [(job_id, "COMPLETED", "12 trials of 1x1")]
    ran = elements_sacct(slurm, job_id)
    assert len(ran) == 12 and {state for state, _, _ in ran.values()} == {"COMPLETED"}
    assert most_at_once([(start, end) for _, start, end in ran.values()]) <= 3
    # The README's table and pictures, from this sweep.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "sweep-status.txt").write_text(hpctf(slurm, home, "sweep", "status", job_id))
    written = hpctf(slurm, home, "sweep", "plot", "--out", str(ARTIFACTS), job_id).split()
    assert sorted(Path(p).name for p in written) == ["optimization_history.png", "param_importance.png"]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_a_grid_runs_each_combination_once(slurm, home):
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "y=choice(0.2, 0.6)", "--param", "opt=choice('adam', 'sgd', 'two words')", "--sampler", "grid"),
        *("--metric", "score", "--goal", "max", "--parallel", "3", OBJECTIVE, "--x", "0.3"),
    )
    assert sweep["sweep"]["trials"] == 6  # the grid's size, without --trials
    found = wait_for_sweep(slurm, home, sweep["job_id"])
    trials = found["trials"]
    assert len(trials) == 6 and {t["state"] for t in trials} == {"COMPLETE"}
    combos = sorted((t["params"]["y"], t["params"]["opt"]) for t in trials)
    assert combos == sorted(itertools.product((0.2, 0.6), ("adam", "sgd", "two words")))
    for trial in trials:  # 'two words' reached the script as one word
        assert trial["value"] == pytest.approx(score(0.3, trial["params"]["y"], trial["params"]["opt"]))
    assert trials[0]["params"] in ({"y": 0.6, "opt": "adam"}, {"y": 0.6, "opt": "two words"})
    table = hpctf(slurm, home, "sweep", "status", sweep["job_id"])  # strings in the table as they are
    assert re.search(r"_\d+\s+COMPLETE\s+0\.6\s+two words\s+1\s", table), table


def test_a_tpe_sweep_learns_from_the_trials_before(slurm, home):
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "x=uniform(0, 1)", "--sampler", "tpe", "--metric", "score", "--goal", "max"),
        *("--trials", "14", "--parallel", "2", "--seed", "3", OBJECTIVE),
    )
    found = wait_for_sweep(slurm, home, sweep["job_id"], timeout=400)
    trials = found["trials"]
    assert len(trials) == 14 and {t["state"] for t in trials} == {"COMPLETE"}
    assert trials[0]["value"] >= 0.99  # |x - 0.3| <= 0.1
    study = Path(found["trials"][0]["run_dir"]).parent.parent / "study.journal"
    assert study.stat().st_size > 0


def test_failed_and_pruned_trials_are_recorded_as_such(slurm, home):
    """x > 0.8 makes the script exit 3: those trials fail. With the median rule, trials
    whose score is below the median of the completed ones at the same step are stopped
    and recorded pruned; their elements end COMPLETED, not FAILED."""
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "x=uniform(0, 1)", "--metric", "score", "--goal", "max", "--early-stop", "median"),
        *("--trials", "10", "--parallel", "3", OBJECTIVE, "--steps", "12", "--sleep", "1", "--fail-above", "0.8"),
        HPCTF_WATCH_EVERY_S="1",
    )
    job_id = sweep["job_id"]
    found = wait_for_sweep(slurm, home, job_id, timeout=400)
    by_state: dict[str, list[dict]] = {}
    for trial in found["trials"]:
        by_state.setdefault(trial["state"], []).append(trial)
    assert {t["params"]["x"] > 0.8 for t in by_state["FAILED"]} == {True}
    assert not [t for t in found["trials"] if t["params"]["x"] > 0.8 and t["state"] != "FAILED"]
    assert by_state.get("PRUNED"), f"no trial was pruned: {found['trials']}"
    assert len(by_state["COMPLETE"]) >= 3
    ran = elements_sacct(slurm, job_id)
    for trial in by_state["PRUNED"]:
        assert ran[trial["job_id"]][0] == "COMPLETED"
        log = (Path(sweep["log_dir"]) / f"{trial['job_id']}_0_log.err").read_text()
        assert f"hpctf: trial {trial['index']} pruned at step" in log and "was pruned: stopped early" in log
        assert trial["value"] is not None  # the last value it reported
    for trial in by_state["FAILED"]:
        assert ran[trial["job_id"]][0] == "FAILED"


def test_cancelling_a_sweep_ends_every_element(slurm, home):
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "x=uniform(0, 1)", "--metric", "score", "--trials", "8", "--parallel", "2"),
        *(OBJECTIVE, "--steps", "300", "--sleep", "1"),
    )
    job_id = sweep["job_id"]
    deadline = time.monotonic() + 120
    while sum(t["state"] == "RUNNING" for t in status(slurm, home, job_id)["trials"]) < 2:
        assert time.monotonic() < deadline, "two trials never ran"
        time.sleep(1)
    assert hpctf(slurm, home, "cancel", job_id).strip() == f"cancelled job {job_id}"
    found = wait_for_sweep(slurm, home, job_id, timeout=120)
    assert found["state"] == "CANCELLED"
    deadline = time.monotonic() + 60  # cancelled elements stay COMPLETING while their processes stop
    while slurm.run("squeue", "-h", "-j", job_id, check=False).stdout.strip():
        assert time.monotonic() < deadline, slurm.run("squeue", "-j", job_id, check=False).stdout
        time.sleep(1)
    ran = elements_sacct(slurm, job_id)
    assert ran and all(state.startswith("CANCELLED") for state, _, _ in ran.values())
    states = [t["state"] for t in found["trials"]]
    assert "RUNNING" not in states and "PENDING" not in states, found
    assert states.count("CANCELLED") == 8  # the 2 that ran (told failed) and the 6 that never started


@pytest.mark.tensorflow
def test_a_sweep_of_two_node_horovod_trials(slurm, home):
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "lr=loguniform(0.001, 0.1)", "--param", "units=choice(8, 16, 32)", "--metric", "val_loss"),
        *("--trials", "2", "--backend", "mpi", "--nodes", "2", "--procs-per-node", "1"),
        str(PROGRAMS / "sweep_horovod.py"),
    )
    found = wait_for_sweep(slurm, home, sweep["job_id"], timeout=600)
    assert [t["state"] for t in found["trials"]] == ["COMPLETE", "COMPLETE"]
    for trial in found["trials"]:
        lr, units = trial["params"]["lr"], trial["params"]["units"]
        assert trial["value"] == pytest.approx(lr * 1.5 + abs(units - 16) / 100)  # 2 ranks averaged
        ranks = [
            json.loads(line[5:])
            for rank in (0, 1)
            for line in (Path(sweep["log_dir"]) / f"{trial['job_id']}_{rank}_log.out").read_text().splitlines()
            if line.startswith("RANK ")
        ]
        assert sorted(r["rank"] for r in ranks) == [0, 1] and {r["size"] for r in ranks} == {2}
        assert len({r["host"] for r in ranks}) == 2  # two nodes


def test_two_sweeps_at_once_keep_to_their_own_trials(slurm, home):
    first = start_sweep(
        slurm,
        home,
        *("--param", "x=uniform(0, 1)", "--metric", "score", "--goal", "max", "--trials", "4", "--parallel", "2"),
        OBJECTIVE,
    )
    second = start_sweep(
        slurm,
        home,
        *("--param", "y=choice(0.1, 0.5, 0.9)", "--sampler", "grid", "--metric", "score", "--goal", "max"),
        *("--parallel", "2", OBJECTIVE, "--x", "0.3"),
    )
    a = wait_for_sweep(slurm, home, first["job_id"])
    b = wait_for_sweep(slurm, home, second["job_id"])
    assert first["run_dir"] != second["run_dir"]
    assert len(a["trials"]) == 4 and {tuple(t["params"]) for t in a["trials"]} == {("x",)}
    assert len(b["trials"]) == 3 and {tuple(t["params"]) for t in b["trials"]} == {("y",)}
    assert sorted(t["params"]["y"] for t in b["trials"]) == [0.1, 0.5, 0.9]
    for found, sweep in ((a, first), (b, second)):
        assert {t["state"] for t in found["trials"]} == {"COMPLETE"}
        assert all(t["job_id"].startswith(f"{sweep['job_id']}_") for t in found["trials"])
        assert all(t["run_dir"].startswith(sweep["run_dir"]) for t in found["trials"])
        for t in found["trials"]:
            assert t["value"] == pytest.approx(score(t["params"].get("x", 0.3), t["params"].get("y", 0.6)))
    ls = json.loads(hpctf(slurm, home, "ls", "--json"))
    assert sorted(r["job_id"] for r in ls) == sorted([first["job_id"], second["job_id"]])


def test_a_requeued_element_resumes_the_same_trial(slurm, home):
    """The checkpoint signal stops element 0, which requeues itself: the next attempt gets
    the same parameters (asked once), resumes from its checkpoint, and the study holds one
    trial, told once, complete."""
    from .test_requeue import requeue_and_release

    sweep = start_sweep(
        slurm,
        home,
        *("--param", "x=uniform(0, 1)", "--metric", "score", "--trials", "1", "--requeue", "--signal-grace", "60"),
        *(OBJECTIVE, "--steps", "40", "--sleep", "0.5"),
    )
    element = f"{sweep['job_id']}_0"
    log_dir = Path(sweep["log_dir"])
    metrics = Path(sweep["run_dir"]) / "trials" / "0" / "metrics" / "rank-0.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and "score" in metrics.read_text(errors="replace")):
        assert time.monotonic() < deadline, "the trial never logged"
        time.sleep(0.5)
    slurm.run("scancel", "--signal=USR1", "--batch", element)
    requeue_and_release(slurm, element, log_dir)
    found = wait_for_sweep(slurm, home, sweep["job_id"], timeout=300)
    [trial] = found["trials"]
    assert trial["state"] == "COMPLETE" and trial["value"] == pytest.approx(score(trial["params"]["x"]))
    out = (log_dir / f"{element}_0_log.out").read_text()
    err = (log_dir / f"{element}_0_log.err").read_text()
    asked = re.findall(r"hpctf: sweep \d+, trial 0: (.*)", err)
    assert len(asked) == 2 and asked[0] == asked[1], err  # both attempts, the same parameters
    saved = re.findall(r"SAVED step=(\d+)", out)
    assert len(saved) == 1 and f"RESUMED restart=1 step={saved[0]}" in out, out
    assert err.count("trial 0: score=") == 1  # told once, by the attempt that ended


def test_a_sweep_of_parameter_server_trials(slurm, home):
    """Each trial is a ps + 2 workers + chief cluster on 2 nodes; the chief logs the metric,
    the servers are stopped when it is done, and the element ends COMPLETED."""
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "lr=choice(0.001, 0.01, 0.1)", "--sampler", "grid", "--metric", "loss", "--parallel", "1"),
        *("--backend", "ps", "--ps", "1", "--workers", "2", "--chief", "--nodes", "2"),
        str(PROGRAMS / "sweep_ps.py"),
    )
    found = wait_for_sweep(slurm, home, sweep["job_id"], timeout=300)
    trials = found["trials"]
    assert [t["params"]["lr"] for t in trials] == [0.01, 0.001, 0.1]  # best (lowest loss) first
    for trial in trials:
        assert trial["state"] == "COMPLETE"
        assert trial["value"] == pytest.approx((trial["params"]["lr"] - 0.01) ** 2 * 1e4 + 1)
    ran = elements_sacct(slurm, sweep["job_id"])
    assert {state for state, _, _ in ran.values()} == {"COMPLETED"}


def test_a_pruned_requeue_trial_checkpoints_and_is_not_requeued(slurm, home):
    """With --requeue the watcher stops a pruned trial by the checkpoint signal: the
    training saves and stops, the element ends COMPLETED without a requeue, and the trial
    is recorded pruned."""
    sweep = start_sweep(
        slurm,
        home,
        *("--param", "x=choice(0.3, 0.31, 0.32, 0.9)", "--sampler", "grid", "--metric", "score", "--goal", "max"),
        *("--early-stop", "median", "--parallel", "1", "--requeue", "--signal-grace", "60"),
        *(OBJECTIVE, "--steps", "8", "--sleep", "1"),
        HPCTF_WATCH_EVERY_S="1",
    )
    found = wait_for_sweep(slurm, home, sweep["job_id"], timeout=300)
    states = {t["params"]["x"]: t["state"] for t in found["trials"]}
    assert states == {0.3: "COMPLETE", 0.31: "COMPLETE", 0.32: "COMPLETE", 0.9: "PRUNED"}, found
    element = f"{sweep['job_id']}_3"
    assert elements_sacct(slurm, sweep["job_id"])[element][0] == "COMPLETED"
    out = (Path(sweep["log_dir"]) / f"{element}_0_log.out").read_text()
    err = (Path(sweep["log_dir"]) / f"{element}_0_log.err").read_text()
    assert "SAVED step=" in out and "RESUMED" not in out  # checkpointed, never resumed
    assert "sending SIGUSR1" in err and "was pruned: stopped early" in err and "requeueing" not in err
