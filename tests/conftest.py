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


@pytest.fixture(autouse=True)
def no_site_config(tmp_path_factory, monkeypatch):
    """Tests see only the targets they define: not this machine's ~/.config/hpctf."""
    monkeypatch.setenv("HPCTF_CONFIG", str(tmp_path_factory.getbasetemp() / "no-user-config.toml"))


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


@pytest.fixture(scope="session")
def slurm():
    """The real three-node test cluster. In CI a cluster that cannot start is a failure."""
    import os

    from .slurmlab import start_cluster

    in_ci = os.environ.get("CI", "").lower() == "true"
    if os.geteuid() != 0 and not in_ci:
        pytest.skip("the test Slurm cluster needs root (run scripts/test as root)")
    if shutil.which("slurmctld") is None and not in_ci and os.environ.get("HPCTF_START_SLURM") != "1":
        pytest.skip("Slurm is not installed: scripts/test installs it (or set HPCTF_START_SLURM=1)")
    try:
        return start_cluster()
    except Exception as err:  # noqa: BLE001 - reported as a failure, never a skip, in CI
        if in_ci or os.environ.get("HPCTF_START_SLURM") == "1":
            pytest.fail(str(err))
        pytest.skip(f"test cluster unavailable: {err}")


@pytest.fixture
def shared_dir(tmp_path: Path) -> Path:
    """A folder every node of the test cluster sees (they share this machine's /tmp)."""
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture(scope="session")
def slurm_without_accounting(slurm):
    """A second, one-node cluster with no slurmdbd: `sacct` fails there."""
    from .slurmlab import start_cluster, stop_cluster

    try:
        cluster = start_cluster(LAB="/tmp/hpctf-lab-noacct", ACCT="0", NODES="1", PORT="17010", FIRST_JOB_ID="500000")
    except Exception as err:  # noqa: BLE001
        pytest.fail(str(err))
    yield cluster
    stop_cluster(cluster)


@pytest.fixture
def home(tmp_path, slurm, monkeypatch):
    """A private hpctf home, and the test cluster's environment for in-process API calls."""
    home = tmp_path / "hpctf-home"
    monkeypatch.setenv("HPCTF_HOME", str(home))
    for key, value in slurm.env.items():
        if key.startswith(("SLURM_", "OMPI_")):
            monkeypatch.setenv(key, value)
    return home
