"""scripts/gpu-check, the check for a lent GPU machine, run here without one so it cannot
rot: `prepare` collects the wheels for Python 3.12 within the size budget, and `run
--no-gpu` installs hpctf from them alone into a fresh venv and checks what needs no GPU
(the refusal of a GPU request on a machine with none, stand-in devices bound, an
over-request refused, the doctor's GPU check). With no Python 3.12 here, the install
uses this machine's Python from a second set of wheels prepared for it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu-check"
BUDGET_MB = 16

pytestmark = pytest.mark.slow


def prepare(folder: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "prepare", str(folder), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_gpu_check_prepares_its_wheels_and_runs_its_non_gpu_part(tmp_path):
    wheels = tmp_path / "wheels"
    done = prepare(wheels)
    names = [w.name for w in wheels.glob("*.whl")]
    assert any(n.startswith("hpctf-") for n in names) and any(n.startswith("pip-") for n in names), names
    assert any(n.startswith("msgspec-") and "cp312" in n for n in names), names  # built for the target
    assert any(n.startswith("python_hostlist-") for n in names), names  # an sdist, built here
    total = sum(w.stat().st_size for w in wheels.glob("*.whl"))
    assert total < BUDGET_MB * 2**20, done.stdout
    assert f"in {len(names)} wheels (budget {BUDGET_MB} MiB)" in done.stdout
    python = shutil.which("python3.12")
    if python is None or subprocess.run([python, "-c", "pass"], capture_output=True).returncode != 0:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        prepare(wheels, "--python-version", version)  # this machine's Python instead
        python = sys.executable
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "run",
            str(wheels),
            "--no-gpu",
            "--python",
            python,
            "--keep",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(run.stdout)
    assert run.returncode == 0 and "gpu-check: PASS: 8/8 checks passed" in run.stdout, run.stdout + run.stderr
    for name in ("install", "no GPU said", "doctor says no GPU", "stand-in GPU bound", "over-request refused"):
        assert f"PASS  {name}:" in run.stdout, run.stdout
