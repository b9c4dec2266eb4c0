"""A sweep's study (issue 18): Optuna over a journal file, one trial per array element.

Askers here are what the array's elements will be: separate processes where it matters
(16 at once on one journal), each building the study with its own sampler.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from statistics import fmean

import pytest

from hpctf.errors import HpctfError, SpecError
from hpctf.sweep.space import parse_space
from hpctf.sweep.study import STUDY_FILE, Study

REPO = Path(__file__).resolve().parents[1]


def test_a_grid_runs_each_combination_once_whatever_the_order(tmp_path):
    space = parse_space(["a=choice(1, 2)", "b=choice('x', 'y', 'z')"])
    study = Study(tmp_path, space, sampler="grid")
    answers = {i: study.ask(i) for i in (4, 0, 5, 2, 1, 3)}
    combos = {(answers[i]["params"]["a"], answers[i]["params"]["b"]) for i in range(6)}
    assert combos == set(itertools.product((1, 2), ("x", "y", "z")))
    assert sorted(a["number"] for a in answers.values()) == list(range(6))
    assert Study(tmp_path, space, sampler="grid").ask(2) == answers[2]  # a requeued element: the same trial
    with pytest.raises(HpctfError, match="trial 6: the grid has only 6 combinations"):
        study.ask(6)


def test_random_draws_stay_in_their_ranges_and_repeat_for_an_element(tmp_path):
    space = parse_space(
        [
            "lr=loguniform(1e-4, 1e-1)",
            "units=quniform(32, 256, 32)",
            "layers=randint(1, 4)",
            "opt=choice('adam', 'sgd')",
        ]
    )
    study = Study(tmp_path, space, sampler="random", seed=7)
    drawn = [study.ask(i)["params"] for i in range(40)]
    assert all(1e-4 <= p["lr"] <= 1e-1 and p["units"] in range(32, 257, 32) and p["layers"] in (1, 2, 3) for p in drawn)
    assert {p["opt"] for p in drawn} == {"adam", "sgd"} and len({p["lr"] for p in drawn}) == 40
    assert sum(p["lr"] < 1e-2 for p in drawn) > 15  # log-uniform: two of three decades below 1e-2
    (tmp_path / "trials" / "3.json").unlink()  # as if element 3 died before keeping its answer
    assert Study(tmp_path, space, sampler="random", seed=7).ask(3)["params"] == drawn[3]  # seeded by its index


def test_normal_values_are_normally_distributed(tmp_path):
    study = Study(tmp_path, parse_space(["init=normal(5, 2)"]), sampler="random")
    values = [study.ask(i)["params"]["init"] for i in range(300)]
    assert abs(fmean(values) - 5) < 0.4 and 1.6 < (fmean((v - 5) ** 2 for v in values)) ** 0.5 < 2.4
    assert any(v < 3 for v in values) and any(v > 7 for v in values)


def test_told_states_and_the_best_trial(tmp_path):
    space = parse_space(["x=uniform(0, 1)"])
    study = Study(tmp_path, space, goal="max", sampler="random")
    for i in range(4):
        study.ask(i)
    study.tell(0, 0.25)
    study.tell(1, state="fail")
    study.tell(2, state="pruned")
    study.tell(3, 0.75)
    trials = study.trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "PRUNED", "COMPLETE"]
    assert study.optuna_study().best_trial.number == 3
    with pytest.raises(HpctfError, match="state='done': must be one of complete, fail, pruned"):
        study.tell(0, state="done")


def test_tpe_finds_the_optimum_of_a_known_function(tmp_path):
    study = Study(tmp_path, parse_space(["x=uniform(-2, 2)"]), goal="min", sampler="tpe", seed=1)
    for i in range(30):
        x = study.ask(i)["params"]["x"]
        study.tell(i, (x - 0.3) ** 2)
    assert abs(study.optuna_study().best_params["x"] - 0.3) < 0.1


ASKER = """
import json, sys
from hpctf.sweep.space import parse_space
from hpctf.sweep.study import Study
folder, index = sys.argv[1], int(sys.argv[2])
print(json.dumps(Study(folder, parse_space(["x=uniform(0, 1)", "n=randint(100)"]), sampler="tpe").ask(index)))
"""


def test_sixteen_elements_asking_at_once_get_sixteen_trials(tmp_path):
    askers = [
        subprocess.Popen([sys.executable, "-c", ASKER, str(tmp_path), str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(16)
    ]
    answers = [json.loads(p.communicate(timeout=300)[0]) for p in askers]
    assert all(p.returncode == 0 for p in askers)
    assert sorted(a["number"] for a in answers) == list(range(16))
    study = Study(tmp_path, parse_space(["x=uniform(0, 1)", "n=randint(100)"]), sampler="tpe")
    assert len(study.trials()) == 16 and (tmp_path / STUDY_FILE).stat().st_size > 0


def test_bad_settings_are_refused(tmp_path):
    space = parse_space(["x=uniform(0, 1)"])
    with pytest.raises(HpctfError, match="goal='best': must be 'min' or 'max'"):
        Study(tmp_path, space, goal="best")
    with pytest.raises(HpctfError, match="sampler='bayes': must be one of grid, random, tpe"):
        Study(tmp_path, space, sampler="bayes")
    with pytest.raises(SpecError, match="param 'x'=.*a grid takes choice, randint or quniform"):
        Study(tmp_path, space, sampler="grid")
