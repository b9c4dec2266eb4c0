"""A sweep's plots (issue 18): the optimization history and the parameter importance as
PNGs, from a study built as the array's elements build it (sweep.json, then each element's
ask and tell), where the metric depends on one parameter only."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from click.testing import CliRunner

from hpctf.cli import cli
from hpctf.errors import HpctfError
from hpctf.registry import Registry
from hpctf.sweep import plots
from hpctf.sweep.config import SweepConfig
from hpctf.sweep.handle import SweepRun
from hpctf.sweep.plots import HISTORY_PNG, IMPORTANCE_PNG, importances, write_plots

from .recorded import private_home, record_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The optimizer does not matter (a thousandth); the learning rate does, best at 10^-2.5.
SPACE = ("--opt=choice('adam', 'sgd')", "lr=loguniform(1e-4, 1e-1)")


def accuracy(params: dict) -> float:
    return 0.95 - 0.05 * (math.log10(params["lr"]) + 2.5) ** 2 - (0.001 if params["--opt"] == "sgd" else 0.0)


def make_sweep(folder: Path, complete: int, *, failed: int = 0, params=SPACE, goal: str = "max") -> Path:
    """A random sweep in ``folder``: ``complete`` trials told their accuracy, then ``failed`` failed ones."""
    config = SweepConfig(params=params, metric="val_accuracy", goal=goal, trials=complete + failed).checked()
    config.write(folder)
    study = config.study(folder)
    for index in range(complete + failed):
        answer = study.ask(index)
        if index < complete:
            study.tell(index, accuracy(answer["params"]))
        else:
            study.tell(index, state="fail")
    return folder


def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(path).shape[:2]
    return width, height


def test_the_parameter_that_matters_has_the_larger_importance(tmp_path):
    folder = make_sweep(tmp_path / "sweep", complete=8, failed=1)
    found = importances(folder)
    assert list(found) == ["lr", "--opt"]  # most important first
    assert found["lr"] > 0.75 > 0.25 > found["--opt"] >= 0
    assert sum(found.values()) == pytest.approx(1)


def test_the_importance_follows_the_goal(tmp_path):
    """Minimising the same numbers: still the learning rate, found from the other end."""
    folder = make_sweep(tmp_path / "sweep", complete=8, goal="min")
    found = importances(folder)
    assert found["lr"] > found["--opt"]


def test_two_pngs_in_the_sweep_folder_or_the_one_given(tmp_path):
    folder = make_sweep(tmp_path / "sweep", complete=8, failed=1)
    written = write_plots(folder)
    assert written == [folder / HISTORY_PNG, folder / IMPORTANCE_PNG]
    assert png_size(written[0]) == (880, 495)  # 8 x 4.5 inches at 110 dpi
    width, height = png_size(written[1])
    assert width == 880 and 200 < height < 400
    elsewhere = write_plots(folder, tmp_path / "plots" / "new")
    assert elsewhere == [tmp_path / "plots" / "new" / HISTORY_PNG, tmp_path / "plots" / "new" / IMPORTANCE_PNG]
    assert all(png_size(p) == png_size(q) for p, q in zip(written, elsewhere))


def test_one_complete_trial_draws_the_history_and_says_why_not_the_importance(tmp_path):
    folder = make_sweep(tmp_path / "sweep", complete=1, failed=2)
    with pytest.raises(HpctfError, match=r"needs at least 2 complete trials; the sweep in .* has 1 \(wrote .* only\)"):
        write_plots(folder)
    assert png_size(folder / HISTORY_PNG) == (880, 495)
    assert not (folder / IMPORTANCE_PNG).exists()


def test_no_complete_trial_is_nothing_to_plot(tmp_path):
    folder = make_sweep(tmp_path / "sweep", complete=0, failed=2)
    with pytest.raises(HpctfError, match="has no complete trial yet: nothing to plot"):
        write_plots(folder)
    assert not (folder / HISTORY_PNG).exists()


def test_a_parameter_with_one_value_is_named(tmp_path):
    folder = make_sweep(tmp_path / "sweep", complete=4, params=("--opt=choice('adam')", SPACE[1]))
    with pytest.raises(HpctfError, match=r"'--opt' \(always 'adam'\) took one value in all 4 complete trials"):
        importances(folder)


def test_a_metric_that_never_changed_is_said(tmp_path):
    folder = tmp_path / "sweep"
    SweepConfig(params=SPACE, metric="val_accuracy", trials=3).write(folder)
    study = SweepConfig.read(folder).study(folder)
    for index in range(3):
        study.ask(index)
        study.tell(index, 0.5)
    with pytest.raises(HpctfError, match="all 3 complete trials have val_accuracy=0.5, so no parameter made"):
        importances(folder)


def test_without_matplotlib_the_message_says_what_to_install(tmp_path, monkeypatch):
    folder = make_sweep(tmp_path / "sweep", complete=2)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    with pytest.raises(HpctfError, match=r"need matplotlib, which is not installed: pip install 'hpctf\[plot\]'"):
        write_plots(folder)
    assert not (folder / HISTORY_PNG).exists()


def test_not_a_sweep_folder(tmp_path):
    with pytest.raises(HpctfError, match="not a sweep folder"):
        write_plots(tmp_path)


def test_the_study_the_elements_tell_through_the_trial_module(tmp_path):
    """Elements 0 and 3 of a 2 x 2 grid as the job script runs them (ask, train, tell), in
    their own processes: they differ in both parameters, enough for both plots."""
    folder = tmp_path / "sweep"
    grid = ("--opt=choice('adam', 'sgd')", "lr=choice(0.001, 0.01)")
    SweepConfig(params=grid, metric="val_accuracy", goal="max", sampler="grid").checked().write(folder)
    for index in (3, 0):
        command = [sys.executable, "-m", "hpctf.sweep.trial", "ask", str(folder), str(index)]
        words = subprocess.run(command, capture_output=True, check=True, timeout=120).stdout.split(b"\0")[:-1]
        params = {words[i].decode(): words[i + 1].decode() for i in range(0, len(words), 2)}
        run = tmp_path / f"run{index}"
        (run / "metrics").mkdir(parents=True)
        line = {"name": "val_accuracy", "step": 0, "value": accuracy({**params, "lr": float(params["--lr"])})}
        (run / "metrics" / "rank-0.jsonl").write_text(json.dumps(line) + "\n")
        command = [sys.executable, "-m", "hpctf.sweep.trial", "tell", str(folder), str(index)]
        subprocess.run([*command, "--run-dir", str(run), "--exit-code", "0"], check=True, timeout=120)
    told = {t.number: (t.params["--opt"], t.params["lr"], t.value) for t in plots.complete_trials(folder)}
    assert told == {0: ("sgd", 0.01, pytest.approx(0.9365)), 1: ("adam", 0.001, pytest.approx(0.9375))}
    assert write_plots(folder) == [folder / HISTORY_PNG, folder / IMPORTANCE_PNG]
    assert set(importances(folder)) == {"lr", "--opt"}


@pytest.fixture
def recorded_sweep(tmp_path, monkeypatch) -> str:
    """Sweep 7001 in a private hpctf home's history, its folder holding 8 complete trials."""
    home = private_home(tmp_path, monkeypatch)
    config = SweepConfig.read(make_sweep(tmp_path / "made", complete=8))
    run = record_run(home, "7001", name="sweep", sweep=json.dumps(config.to_dict()))
    make_sweep(run.run_dir, complete=8)
    return str(run.run_dir)


def test_the_cli_prints_the_paths_it_wrote(recorded_sweep, tmp_path):
    done = CliRunner().invoke(cli, ["sweep", "plot", "7001"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [f"{recorded_sweep}/{HISTORY_PNG}", f"{recorded_sweep}/{IMPORTANCE_PNG}"]
    out = tmp_path / "pngs"
    done = CliRunner().invoke(cli, ["sweep", "plot", "7001", "--out", str(out)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [str(out / HISTORY_PNG), str(out / IMPORTANCE_PNG)]
    assert all(png_size(out / name)[0] == 880 for name in (HISTORY_PNG, IMPORTANCE_PNG))


def test_the_handle_plots_too(recorded_sweep, tmp_path):
    registry = Registry()
    try:
        run = SweepRun(registry.get("7001"), registry)
        assert run.plot(tmp_path / "pngs") == [tmp_path / "pngs" / HISTORY_PNG, tmp_path / "pngs" / IMPORTANCE_PNG]
    finally:
        registry.close()


def test_the_cli_says_what_is_missing_in_one_line(recorded_sweep, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    done = CliRunner().invoke(cli, ["sweep", "plot", "7001"])
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert done.output.strip() == f"hpctf: {plots.PLOT_NEEDS}"
    assert plots.PLOT_NEEDS.endswith("pip install 'hpctf[plot]'")
    done = CliRunner().invoke(cli, ["sweep", "plot", "404"])
    assert done.exit_code != 0 and "404" in done.output
