"""Properties of the estimator over random input (issue 8, hostile input).

Random values for every field (wrong types, hostile strings from tests/hostile.py,
negative and huge integers, NaN, random lists and dicts) either raise a SpecError whose
problems name real fields of the spec, or give a spec that renders to a script `bash -n`
accepts: never any other exception. A spec that is invalid by the time it is submitted
(a field changed behind the validation's back, a file deleted since) is refused by
plan + schedule before anything is written: no run folder, no record, no sbatch call.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hpctf
from hpctf import submission
from hpctf.errors import SpecError
from hpctf.render import JobPaths, render_script
from hpctf.targets import Target

from .hostile import corpus

PATH = os.environ["PATH"]
FIELDS = {f.name for f in dataclasses.fields(hpctf.TensorFlow)}
MARKER = f"/tmp/hpctf-properties-pwned-{secrets.token_hex(4)}"
HOSTILE = corpus(MARKER)
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)

hostile = st.sampled_from(HOSTILE)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.integers(-3, 70000),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile,
    st.text(max_size=12),
)
anything = st.one_of(
    scalar,
    st.lists(st.one_of(hostile, st.integers(-3, 5), st.none()), max_size=3),
    st.tuples(hostile, st.integers()),
    st.dictionaries(st.one_of(hostile, st.text(max_size=6), st.integers()), scalar, max_size=3),
)


def good(*values):
    return st.sampled_from(values)


def field_strategies(source: Path) -> dict[str, st.SearchStrategy]:
    """Per field: values that are usually valid (hostile strings included where the field
    takes free text), so that a fair share of random specs is valid."""
    text = st.one_of(hostile, st.text(max_size=8))
    words = st.lists(text, max_size=4)
    number = st.one_of(st.integers(-5, 100), st.floats(-1e3, 1e3), text)
    return {
        "source_directory": good(str(source), source),
        "entry_script": good("train.py", "./train.py"),
        "script_params": st.dictionaries(
            st.one_of(hostile, good("--epochs", "--lr")),
            st.one_of(number, st.none(), st.booleans(), st.lists(number, max_size=2)),
            max_size=4,
        ),
        "compute_target": good(None, "slurm", "local"),
        "conda_packages": st.lists(good("numpy", "scikit-learn>=1.3", "$(x)", "a b"), max_size=2),
        "pip_packages": st.lists(good("six==1.16.0", "tomli>=2", "`id`", "x;y"), max_size=2),
        "use_gpu": st.booleans(),
        "node_count": st.integers(1, 3),
        "process_count_per_node": st.integers(1, 3),
        "distributed_backend": good(None, "mpi", "ps", "ps", "none", "single"),
        "worker_count": st.integers(1, 3),
        "parameter_server_count": st.integers(0, 2),
        "arguments": words,
        "job_name": st.one_of(st.none(), hostile),
        "partition": good(None, "debug", "a,b"),
        "account": good(None, "ml-team"),
        "qos": good(None, "high"),
        "time": good(None, "30", "1:00:00", "2-00:00:00", "infinite"),
        "cpus_per_task": st.one_of(st.none(), st.integers(1, 8)),
        "memory": good(None, "16G", "4000"),
        "gpus_per_node": st.one_of(st.none(), st.integers(0, 8)),
        "gpu_type": good(None, "tesla"),
        "constraint": good(None, "ib&v100", "[a*2|b]"),
        "exclusive": st.booleans(),
        "environment_variables": st.dictionaries(
            good("A", "B_2", "GREETING"), st.one_of(hostile, st.integers(), st.floats()), max_size=3
        ),
        "secret_environment_variables": st.lists(good("WANDB_API_KEY", "HF_TOKEN", "1X"), max_size=1),
        "setup": st.lists(good("ulimit -n 4096 || true", 'echo "$(hostname)"'), max_size=2),
        "sbatch_options": st.dictionaries(
            good("comment", "mail-type", "hold", "--reservation"),
            st.one_of(hostile, st.none(), st.just(True), st.integers(0, 9)),
            max_size=2,
        ),
        "python": st.one_of(st.none(), hostile, good("python3", "/usr/bin/python3")),
        "modules": st.lists(good("cuda/12.2", "openmpi/4.1.5"), max_size=2),
        "container_image": st.one_of(
            st.none(), st.none(), hostile, good("/images/tf.sif", "docker://tensorflow/tensorflow:2.18.0")
        ),
        "container_runtime": good(None, "apptainer", "singularity", "pyxis"),
        "container_mounts": st.lists(good("/scratch:/scratch", "/data:/data:ro"), max_size=2),
        "launcher": good(None, "srun", "mpirun"),
        "pmi": good(None, "pmix", "pmi2"),
        "chief": st.booleans(),
        "port_base": st.integers(1024, 65000),
        "requeue": st.booleans(),
        "max_restarts": st.one_of(st.none(), st.integers(0, 1000)),
        "signal_grace": st.one_of(st.none(), st.integers(30, 65535)),
    }


@st.composite
def spec_fields(draw, source: Path, wild: int = 0) -> dict:
    """Random estimator fields: each set or left to its default; a few set to any value at
    all (a wrong type, a hostile string, a negative or huge number, a list, a dict), and
    ``wild`` more of them on top, the distributed backend set in most examples."""
    usual = field_strategies(source)
    names = sorted(FIELDS - {"source_directory", "entry_script"})
    dice = draw(st.randoms(use_true_random=True))  # uniform: Hypothesis favours small values
    fields = {}
    for name in names:
        roll = dice.random()
        if roll < 0.04:
            fields[name] = draw(anything)  # any field, including ones added after this test
        elif (roll < 0.4 or (name == "distributed_backend" and roll < 0.8)) and name in usual:
            fields[name] = draw(usual[name])
    for name in dice.sample(names, wild):
        fields[name] = draw(anything)
    fields["source_directory"] = draw(anything) if dice.random() < 0.05 else source
    fields["entry_script"] = draw(st.one_of(anything, hostile)) if dice.random() < 0.05 else "train.py"
    return fields


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("properties") / "project"
    src.mkdir()
    (src / "train.py").write_text("print('training')\n")
    return src


def base_field(problem_field: str) -> str:
    return problem_field.split("[", 1)[0]


def assert_names_real_fields(err: SpecError) -> None:
    assert err.problems, str(err)
    for problem in err.problems:
        assert base_field(problem.field) in FIELDS, f"{problem.field!r} is not a field of the spec: {err}"
        assert problem.field in str(err) and problem.allowed in str(err)


@SETTINGS
@given(data=st.data())
def test_random_specs_are_refused_by_field_or_render_to_valid_bash(project, data):
    fields = data.draw(spec_fields(project))
    try:
        spec = hpctf.TensorFlow(**fields)
    except SpecError as err:
        assert_names_real_fields(err)
        return
    script = render_script(spec, JobPaths(workdir=project, log_dir=project / "logs"), target=Target(name="slurm"))
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, f"{done.stderr}\n{script}"
    assert not os.path.lexists(MARKER)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fields_of_the_wrong_type_are_refused_by_field(project, data):
    """The same with one to three fields of any type: the checks that do arithmetic on
    counts and flags (task counts, ports, GPUs per node) must not trip over them."""
    fields = data.draw(spec_fields(project, wild=data.draw(st.integers(1, 3))))
    try:
        spec = hpctf.TensorFlow(**fields)
    except SpecError as err:
        assert_names_real_fields(err)
        return
    render_script(spec, JobPaths(workdir=project, log_dir=project / "logs"), target=Target(name="slurm"))


def test_the_random_specs_cover_both_outcomes(project):
    """The property above is not vacuous: random specs are often valid, often not."""
    outcomes = {"valid": 0, "invalid": 0}

    @settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def count(data):
        try:
            hpctf.TensorFlow(**data.draw(spec_fields(project)))
            outcomes["valid"] += 1
        except SpecError:
            outcomes["invalid"] += 1

    count()
    assert outcomes["valid"] >= 10 and outcomes["invalid"] >= 10, outcomes


# ---------------------------------------------------------------------------------------
# Invalid at submit time: nothing is written, nothing is submitted.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_sbatch(tmp_path_factory) -> Path:
    """An sbatch that records its calls (and would accept the job): it must never run."""
    folder = tmp_path_factory.mktemp("fake-sbatch")
    calls = folder / "calls"
    (folder / "sbatch").write_text(f'#!/bin/sh\necho "$@" >>{calls}\necho 4242\n')
    (folder / "sbatch").chmod(0o755)
    return folder


def home_contents(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


@SETTINGS
@given(data=st.data())
def test_plan_and_schedule_of_an_invalid_spec_write_nothing(project, fake_sbatch, tmp_path_factory, data, monkeypatch):
    valid = hpctf.TensorFlow(
        source_directory=project, entry_script="train.py", python="python3", compute_target="slurm"
    )
    name = data.draw(st.sampled_from(sorted(FIELDS - {"compute_target"})))
    value = data.draw(st.one_of(anything, hostile))
    broken = dataclasses.replace(valid)
    object.__setattr__(broken, name, value)  # changed behind the validation's back
    try:
        broken.with_changes()
        assume(False)  # still a valid spec: not what this property is about
    except SpecError:
        pass
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PATH", f"{fake_sbatch}{os.pathsep}{PATH}")
    with pytest.raises(SpecError) as caught:
        submission.schedule(submission.plan(broken, home=home))
    assert_names_real_fields(caught.value)
    assert any(base_field(f) == name for f in caught.value.fields), str(caught.value)
    assert home_contents(home) == []
    assert not (fake_sbatch / "calls").exists()


def test_a_file_deleted_after_the_spec_was_built_is_reported_as_the_estimators_problem(project, tmp_path):
    src = tmp_path / "code"
    src.mkdir()
    (src / "gone.py").write_text("")
    spec = hpctf.TensorFlow(source_directory=src, entry_script="gone.py", compute_target="local")
    (src / "gone.py").unlink()
    home = tmp_path / "home"
    with pytest.raises(SpecError) as caught:
        submission.schedule(submission.plan(spec, home=home))
    assert caught.value.fields == ["entry_script"]
    assert "target" not in str(caught.value)  # not "the target does not fit this job"
    assert home_contents(home) == []
