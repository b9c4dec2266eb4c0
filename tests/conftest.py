from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import hpctf
from hpctf.executors.local.launch import free_port_base
from hpctf.render import JobPaths

REPO = Path(__file__).resolve().parent.parent

# Fixed paths so snapshots do not depend on where the suite runs.
SNAPSHOT_PATHS = JobPaths(workdir=Path("/shared/project"), log_dir=Path("/shared/project/hpctf-logs"))


@pytest.fixture(autouse=True)
def no_site_config(tmp_path_factory, monkeypatch):
    """Tests see only the targets they define: not this machine's ~/.config/hpctf."""
    monkeypatch.setenv("HPCTF_CONFIG", str(tmp_path_factory.getbasetemp() / "no-user-config.toml"))


@pytest.fixture(autouse=True)
def slurm_version_cache(tmp_path_factory, monkeypatch):
    """hpctf.executors.slurm.version keeps `sbatch --version` in ~/.cache and in memory: each test
    gets an empty cache of its own, so no test reads what another (or the machine) left."""
    from hpctf.executors.slurm import version

    folder = tmp_path_factory.mktemp("slurm-version")
    monkeypatch.setattr(version, "cache_file", lambda: folder / "slurm-version.json")
    detect = version.detect  # a test may replace it; the real one's memory is cleared
    detect.cache_clear()
    yield
    detect.cache_clear()


@pytest.fixture(autouse=True)
def slurm_cluster_cache(tmp_path_factory, monkeypatch):
    """The same for the ClusterName hpctf.executors.slurm.cluster keeps (`scontrol show config`)."""
    from hpctf.executors.slurm import cluster

    folder = tmp_path_factory.mktemp("slurm-cluster")
    monkeypatch.setattr(cluster, "cache_file", lambda: folder / "slurm-cluster.json")
    cluster._detect.cache_clear()
    yield
    cluster._detect.cache_clear()


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
        input=script,
        capture_output=True,
        text=True,
    )


def bash_n(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)


@pytest.fixture(scope="session")
def slurm():
    """The real three-node test cluster. A test that needs it fails, never skips, when it
    cannot start: deselect the Slurm tests instead (-m "not slurm"), as scripts/test
    does, and says it does, when it does not run as root."""
    import os

    from .slurmlab import start_cluster

    if os.geteuid() != 0:
        pytest.fail(
            "the test Slurm cluster needs root: run scripts/test as root, or leave the Slurm tests out (-m 'not slurm')"
        )
    if shutil.which("slurmctld") is None:
        pytest.fail(
            "Slurm is not installed: scripts/test installs it (as root), or leave the Slurm tests out (-m 'not slurm')"
        )
    try:
        return start_cluster()
    except Exception as err:  # noqa: BLE001 - a failure, never a skip
        pytest.fail(f"the test Slurm cluster did not start: {err}")


def pytest_collection_modifyitems(items):
    """A test that uses the cluster (the `slurm` fixture, itself or through another such as
    `home`) is marked `slurm`, so -m "not slurm" leaves out exactly the tests that need it."""
    for item in items:
        if "slurm" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slurm") is None:
            item.add_marker(pytest.mark.slurm)


TRAINING_STACK = ("tensorflow", "tf_keras", "horovod", "sklearn", "mpi4py")


def pytest_runtest_setup(item):
    """Tests marked `tensorflow` need the training stack in this interpreter
    (scripts/install-tf-stack), tests marked `root` need root: without it they fail,
    saying so, never skip."""
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        pytest.fail("this test needs root (run scripts/test as root, or leave it out: -m 'not root')", pytrace=False)
    if item.get_closest_marker("tensorflow") is None:
        return
    import importlib.util

    missing = [m for m in TRAINING_STACK if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"the training stack is not installed ({', '.join(missing)}): run scripts/install-tf-stack, "
            "or leave the TensorFlow tests out (-m 'not tensorflow')",
            pytrace=False,
        )


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
        # Its daemons listen on P, P+1, P+2 and P+11: a base whose next 20 ports are free.
        port = str(free_port_base(20, start=17000))
        cluster = start_cluster(LAB="/tmp/hpctf-lab-noacct", ACCT="0", NODES="1", PORT=port, FIRST_JOB_ID="500000")
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


def pytest_terminal_summary(terminalreporter, config):
    """The random order's seed, at the end too (-q drops the header that prints it)."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"tests ran in random order: --randomly-seed={seed} replays it (pytest-randomly)")
