"""``hpctf sweep`` refuses bad input with one message naming the parameter (issue 18), and
a refused sweep leaves nothing behind: no run folder, no record, no job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.registry import Registry

PROGRAM = str(Path(__file__).resolve().parent / "programs" / "sweep_objective.py")


def sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HPCTF_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    command = [sys.executable, "-c", "from hpctf.cli import main; main()", "sweep", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    "params, said",
    [
        (["x=gaussian(0, 1)"], "param 'x'='gaussian(0, 1)': 'gaussian' is not a distribution; known: choice, uniform"),
        (["x=randint(5, 5)"], "param 'x'='randint(5, 5)': the range is empty: 5 >= 5"),
        (["x=uniform(0.9, 0.1)"], "param 'x'='uniform(0.9, 0.1)': low must be below high: 0.9 >= 0.1"),
        (["x=loguniform(0, 1)"], "param 'x'='loguniform(0, 1)': loguniform needs low > 0"),
        (
            ["x;rm -rf ~=choice(1, 2)"],
            "param 'x;rm -rf ~'='x;rm -rf ~': the name must be an option of the entry script",
        ),
        (["x=choice(__import__('os'))"], "the arguments must be numbers or quoted strings"),
        (["x=uniform(0, 1)", "x=uniform(0, 2)"], "param 'x'='x=uniform(0, 2)': is given twice"),
    ],
)
def test_a_bad_parameter_is_one_message_naming_it(tmp_path, params, said):
    args = [arg for p in params for arg in ("--param", p)]
    done = sweep(tmp_path, *args, "--metric", "score", "--trials", "4", PROGRAM)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert said in done.stderr, done.stderr
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").glob("runs/*"))


def test_a_grid_larger_than_the_budget_says_how_large(tmp_path):
    done = sweep(
        tmp_path,
        *("--param", "x=choice(1, 2, 3)", "--param", "y=randint(4)", "--sampler", "grid", "--trials", "10"),
        *("--metric", "score", PROGRAM),
    )
    assert done.returncode == 2
    assert "trials=10: the grid has 12 combinations: give --trials 12 or more, or shrink the space" in done.stderr


def test_a_grid_needs_finite_parameters(tmp_path):
    done = sweep(tmp_path, "--param", "x=uniform(0, 1)", "--sampler", "grid", "--metric", "score", PROGRAM)
    assert done.returncode == 2
    assert "param 'x'='x=uniform(0, 1)': a grid takes choice, randint or quniform" in done.stderr


def test_settings_are_checked_together(tmp_path):
    done = sweep(tmp_path, "--param", "x=uniform(0, 1)", "--metric", " ", "--parallel", "0", PROGRAM)
    assert done.returncode == 2
    for said in ("metric=' ': the name of a metric", "parallel=0: an integer from 1", "trials=None: how many trials"):
        assert said in done.stderr, done.stderr


def test_a_space_file_and_options_together(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('metric = "score"\ngoal = "max"\ntrials = 5\n[params]\nx = "uniform(0, 1)"\nopt = ["a", "b"]\n')
    done = sweep(
        tmp_path, "--space", str(space), "--param", "y=choice(0.1, 0.2)", "--trials", "7", "--dry-run", PROGRAM
    )
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --array=0-6" in done.stdout and "max of score" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('metrc = "score"\n[params]\nx = "uniform(0, 1)"\n')
    done = sweep(tmp_path, "--space", str(bad), PROGRAM)
    assert done.returncode == 2 and "unknown key(s) metrc" in done.stderr


def test_the_python_api_checks_at_once(tmp_path):
    import hpctf

    (tmp_path / "train.py").write_text("")
    estimator = hpctf.TensorFlow(source_directory=tmp_path, entry_script="train.py")
    with pytest.raises(hpctf.SpecError, match=r"params.lr='loguniform\(0, 1\)': loguniform needs low > 0"):
        hpctf.Sweep(estimator, {"lr": "loguniform(0, 1)"}, metric="loss", trials=3)
    sweep = hpctf.Sweep(estimator, {"lr": "loguniform(1e-4, 1e-1)", "batch": [32, 64]}, metric="loss", trials=3)
    assert sweep.config.params == ("lr=loguniform(0.0001, 0.1)", "batch=choice(32, 64)")


def test_a_study_that_cannot_be_made_stops_the_submit(tmp_path, monkeypatch):
    """Checked before the job is queued: Optuna missing on the login node, and a database
    URL that cannot be used; nothing is left behind either way."""
    import importlib.util

    import hpctf
    from hpctf import executors

    monkeypatch.setenv("HPCTF_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(executors, "default_name", lambda: "local")
    started = []
    monkeypatch.setattr(executors.get("local"), "start", lambda plan: started.append(plan) or "L1")
    (tmp_path / "train.py").write_text("")
    estimator = hpctf.TensorFlow(source_directory=tmp_path, entry_script="train.py", compute_target="local")
    bad_url = hpctf.Sweep(
        estimator, ["x=uniform(0, 1)"], metric="loss", trials=2, storage="sqlite:////no/such/dir/s.db"
    )
    with pytest.raises(hpctf.HpctfError, match=r"storage='sqlite:////no/such/dir/s.db'"):
        bad_url.submit()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "optuna" else find_spec(name))
    with pytest.raises(hpctf.HpctfError, match=r"sweeps need Optuna, which this Python lacks: pip install"):
        hpctf.Sweep(estimator, ["x=uniform(0, 1)"], metric="loss", trials=2).submit()
    assert started == [] and list((tmp_path / "home" / "runs").iterdir()) == []
    registry_file = tmp_path / "home" / "registry.sqlite"
    assert not registry_file.exists() or Registry(registry_file).count() == 0


def test_a_database_password_is_kept_from_other_eyes(tmp_path):
    """sweep.json holds the URL the elements need, readable by the user only; what hpctf
    prints (a run's record, a dry run) shows the password as ***."""
    import json
    import stat

    from hpctf.registry import RunRecord
    from hpctf.sweep.config import SweepConfig

    config = SweepConfig(("x=uniform(0, 1)",), "loss", trials=2, storage="mysql+pymysql://me:s3cret@db/sweeps")
    config.write(tmp_path)
    assert stat.S_IMODE((tmp_path / "sweep.json").stat().st_mode) == 0o600
    assert SweepConfig.read(tmp_path).storage == "mysql+pymysql://me:s3cret@db/sweeps"
    record = RunRecord(
        "7", "slurm", "n", "single", "1x1", "/r", "/r/logs", "c", 0.0, sweep=json.dumps(config.to_dict())
    )
    shown = json.dumps(record.to_dict())
    assert "s3cret" not in shown and "mysql+pymysql://me:***@db/sweeps" in shown
    assert config.to_dict(masked=True)["storage"] == "mysql+pymysql://me:***@db/sweeps"
