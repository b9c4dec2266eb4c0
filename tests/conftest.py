from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import hpctf
from hpctf.render import JobPaths

REPO = Path(__file__).resolve().parent.parent

# Fixed paths so snapshots do not depend on where the suite runs.
SNAPSHOT_PATHS = JobPaths(workdir=Path("/shared/project"), log_dir=Path("/shared/project/hpctf-logs"))


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    src = tmp_path / "project"
    src.mkdir()
    (src / "train.py").write_text("print('training')\n")
    return src


@pytest.fixture
def make_spec(source_dir: Path):
    def make(**fields) -> hpctf.TensorFlow:
        fields.setdefault("source_directory", source_dir)
        fields.setdefault("entry_script", "train.py")
        fields.setdefault("python", "python3")
        return hpctf.TensorFlow(**fields)

    return make


def shellcheck(script: str) -> subprocess.CompletedProcess:
    """shellcheck at severity warning and above (Debian's package)."""
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (apt-get install shellcheck; scripts/test does it)")
    return subprocess.run(
        ["shellcheck", "--severity=warning", "--shell=bash", "-"],
        input=script, capture_output=True, text=True,
    )


def bash_n(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
