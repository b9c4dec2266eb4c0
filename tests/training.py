"""Helpers for the tests that train for real on the test cluster: submit through the CLI,
read every task's log, and fail (never skip) when the training stack is missing where it
must be installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HPCTF = str(Path(sys.executable).with_name("hpctf"))
STACK = ("tensorflow", "tf_keras", "horovod", "sklearn", "mpi4py")


@pytest.fixture(scope="module")
def training_stack():
    """TensorFlow, tf-keras, Horovod, scikit-learn and mpi4py in the project's interpreter
    (scripts/install-tf-stack). Missing under scripts/test or CI: a failure."""
    missing = [m for m in STACK if importlib.util.find_spec(m) is None]
    if missing:
        message = f"training stack not installed ({', '.join(missing)}): run scripts/install-tf-stack"
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("HPCTF_START_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def all_logs(log_dir: Path, job_id: str) -> str:
    return "\n".join(f"===== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(log_dir.glob(f"{job_id}_*_log.*")))


def task_log(log_dir: Path, job_id: str, task: int, stream: str = "out") -> str:
    path = log_dir / f"{job_id}_{task}_log.{stream}"
    return path.read_text(errors="replace") if path.exists() else ""


def hpctf_env(slurm, home: Path, **extra: str) -> dict[str, str]:
    """The environment a user's shell on the login node would have: the cluster's, a
    private hpctf home, and no TF_USE_LEGACY_KERAS unless the test sets one."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return {**env, **slurm.env, "HPCTF_HOME": str(home), **extra}


def submit_cli(slurm, home: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> tuple[str, Path]:
    """`hpctf submit --json --wait ARGS`; (job id, log dir). Prints every log if it failed."""
    env = env or hpctf_env(slurm, home)
    done = subprocess.run([HPCTF, "submit", "--json", "--wait", *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.stdout.strip(), f"hpctf submit printed nothing:\n{done.stderr}"
    record = json.loads(done.stdout.splitlines()[0])
    log_dir = Path(record["log_dir"])
    assert done.returncode == 0, f"job {record['job_id']} failed:\n{done.stderr}\n{all_logs(log_dir, record['job_id'])}"
    return record["job_id"], log_dir
