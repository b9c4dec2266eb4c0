"""The Keras policy (hpctf.job.keras_policy): which TF_USE_LEGACY_KERAS each task gets, the
runtime option each backend renders, and the task bootstrap applying it. What tf.keras
then really is in a task is shown on the cluster (test_users_code.py) and by the doctor."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from hpctf.job.keras_policy import KerasPolicyError, keras_environment, runtime_mode, tf_keras_installed
from hpctf.render import runtime_arguments

from .training import HPCTF


@pytest.mark.parametrize(
    "mode, env, installed, expected",
    [
        ("auto", {}, True, {"TF_USE_LEGACY_KERAS": "1"}),
        ("auto", {}, False, {}),  # no tf-keras: TensorFlow's default, Keras 3
        ("auto", {"TF_USE_LEGACY_KERAS": "0"}, True, {}),  # the user decided
        ("auto", {"TF_USE_LEGACY_KERAS": ""}, True, {}),
        ("legacy", {}, True, {"TF_USE_LEGACY_KERAS": "1"}),
        ("legacy", {"TF_USE_LEGACY_KERAS": "0"}, True, {"TF_USE_LEGACY_KERAS": "1"}),
        ("3", {"TF_USE_LEGACY_KERAS": "1"}, True, {"TF_USE_LEGACY_KERAS": "0"}),
        ("3", {}, False, {"TF_USE_LEGACY_KERAS": "0"}),
    ],
)
def test_keras_environment(mode, env, installed, expected):
    assert keras_environment(mode, env, installed=installed) == expected


def test_legacy_without_tf_keras_says_how_to_install_it():
    with pytest.raises(
        KerasPolicyError,
        match=r"keras='legacy' needs the tf-keras package in the job's Python .*pip install 'tf-keras~=X.Y.0'",
    ):
        keras_environment("legacy", {}, installed=False)


@pytest.mark.parametrize(
    "keras, backend, option",
    [
        ("auto", "single", None),
        ("auto", "mpi", "auto"),
        ("auto", "ps", "auto"),
        ("legacy", "single", "legacy"),
        ("3", "mpi", "3"),
        ("3", "single", "3"),
    ],
)
def test_runtime_option_per_backend(make_spec, keras, backend, option):
    shape = {"single": {}, "mpi": {"distributed_backend": "mpi"}, "ps": {"distributed_backend": "ps"}}[backend]
    assert runtime_mode(keras, backend) == option
    args = runtime_arguments(make_spec(keras=keras, **shape))
    assert (args[args.index("--keras") + 1] if "--keras" in args else None) == option


def runtime_print(*options: str, **env: str) -> dict[str, str]:
    """`python -m hpctf.runtime OPTIONS --print` in a one-task Slurm-like environment."""
    base = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.runtime", *options, "--print"],
        capture_output=True,
        text=True,
        env={**base, "SLURM_PROCID": "0", **env},
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_tf_keras_is_found_on_the_path_without_importing_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert not tf_keras_installed()
    (tmp_path / "tf_keras").mkdir()
    (tmp_path / "tf_keras" / "__init__.py").write_text("raise SystemExit('imported')\n")
    importlib.invalidate_caches()
    assert tf_keras_installed() and "tf_keras" not in sys.modules


def test_the_bootstrap_applies_the_policy(tmp_path):
    # A tf_keras the task's interpreter finds (here on PYTHONPATH) makes "auto" legacy.
    (tmp_path / "tf_keras").mkdir()
    (tmp_path / "tf_keras" / "__init__.py").write_text("")
    assert runtime_print("--keras", "auto", PYTHONPATH=str(tmp_path))["TF_USE_LEGACY_KERAS"] == "1"
    assert "TF_USE_LEGACY_KERAS" not in runtime_print(
        "--keras", "auto", PYTHONPATH=str(tmp_path), TF_USE_LEGACY_KERAS="0"
    )
    assert runtime_print("--keras", "3", TF_USE_LEGACY_KERAS="1")["TF_USE_LEGACY_KERAS"] == "0"
    assert "TF_USE_LEGACY_KERAS" not in runtime_print()  # no --keras (one process): TensorFlow's default


def test_unknown_mode_stops_the_task_with_a_message():
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.runtime", "--keras", "2", "--print"],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_PROCID": "0"},
    )
    assert done.returncode == 2 and "--keras='2': must be one of auto, legacy, 3" in done.stderr


def test_cli_flag_reaches_the_script(source_dir):
    done = subprocess.run(
        [HPCTF, "render", "--keras", "3", str(source_dir / "train.py")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "-m hpctf.runtime --keras 3 --" in done.stdout and "TF_USE_LEGACY_KERAS=0, so tf.keras" in done.stdout
    bad = subprocess.run(
        [HPCTF, "render", "--keras", "2", str(source_dir / "train.py")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "'2' is not one of 'auto', 'legacy', '3'" in bad.stderr
