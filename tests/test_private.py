"""Private by default and secrets (#21): what hpctf writes is owner-only whatever the
umask, a secret's value reaches every task and no file or output, and a cache folder
that others can write is refused. The local target here; the cluster in
tests/test_private_cluster.py."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import hpctf
from hpctf.errors import HpctfError, SpecError
from hpctf.job import envs
from hpctf.private import make_folder, private_home, write_file
from hpctf.registry import Registry

PROGRAMS = Path(__file__).resolve().parent / "programs"


@pytest.fixture
def umask_022():
    """The usual login-node umask, for this test's process."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Every folder and file under ``root`` (itself too): its permission bits."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(folder, name)
            if not path.is_symlink():
                out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def open_to_others(root: Path) -> dict[str, str]:
    return {rel: oct(mode) for rel, mode in modes(root).items() if mode & 0o077}


def files_holding(root: Path, value: bytes) -> list[str]:
    """Every file under ``root`` whose bytes contain ``value``."""
    found = []
    for folder, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and value in path.read_bytes():
                found.append(str(path))
    return found


# ---------------------------------------------------------------------------------------
# Folders and files
# ---------------------------------------------------------------------------------------


def test_new_folders_and_files_are_owner_only_under_umask_022(tmp_path, umask_022):
    deep = make_folder(tmp_path / "a" / "b" / "c")
    write_file(deep / "f.txt", "x")
    write_file(deep / "g.bin", b"y", 0o700)
    assert modes(tmp_path / "a") == {".": 0o700, "b": 0o700, "b/c": 0o700, "b/c/f.txt": 0o600, "b/c/g.bin": 0o700}
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    make_folder(tmp_path)  # an existing folder is left as it is
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before


def test_an_open_data_folder_is_tightened_once_with_one_line(tmp_path, capsys):
    home = tmp_path / "home"
    run = home / "runs" / "20260101-000000-x-abcdef"
    (run / "logs").mkdir(parents=True)
    (home / "objects" / "ab").mkdir(parents=True)
    for path, mode in (
        (home / "registry.sqlite", 0o644),
        (run / "job.sbatch", 0o755),
        (run / "logs" / "1_0_log.out", 0o644),
    ):
        path.write_text("")
        path.chmod(mode)
    (home / "objects" / "ab" / "abc").write_text("code")
    (home / "objects" / "ab" / "abc").chmod(0o444)
    (home / "unrelated.txt").write_text("not hpctf's")
    (home / "unrelated.txt").chmod(0o644)
    for folder in (home, home / "runs", run, run / "logs", home / "objects", home / "objects" / "ab"):
        folder.chmod(0o755)

    Registry(home / "registry.sqlite").close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "owner-only now" in err and str(home) in err, err
    left = open_to_others(home)
    assert left == {"unrelated.txt": "0o644"}, left  # only what hpctf keeps there is its business
    assert stat.S_IMODE((home / "objects" / "ab" / "abc").stat().st_mode) == 0o400

    Registry(home / "registry.sqlite").close()  # nothing left to say
    assert capsys.readouterr().err == ""
    (home / "registry.sqlite").chmod(0o644)  # opened up again later: tightened again
    Registry(home / "registry.sqlite").close()
    assert "owner-only now" in capsys.readouterr().err
    assert stat.S_IMODE((home / "registry.sqlite").stat().st_mode) == 0o600


def test_the_registry_and_its_journal_are_owner_only(tmp_path, umask_022):
    from hpctf.registry import RunRecord

    home = tmp_path / "home"
    registry = Registry(home / "registry.sqlite")
    registry._db.execute("BEGIN IMMEDIATE")
    fields = dict(target="local", name="x", backend="single", shape="1x1", run_dir="", log_dir="", command="")
    registry.add(RunRecord(job_id="1", submitted=0.0, **fields))
    journal = home / "registry.sqlite-journal"
    assert journal.exists()  # SQLite's rollback journal, while the transaction is open
    assert modes(home) == {".": 0o700, ".private": 0o600, "registry.sqlite": 0o600, "registry.sqlite-journal": 0o600}
    registry._db.execute("COMMIT")
    registry.close()


def test_a_sticky_shared_folder_is_never_tightened(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    private_home(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


# ---------------------------------------------------------------------------------------
# Secrets: validation and the missing variable
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names, problem",
    [
        (["1TOKEN"], "shell variable names"),
        (["A-B"], "shell variable names"),
        (["SLURM_JOB_ID"], "is set by Slurm for the job"),
        (["TF_CONFIG"], "is written by hpctf for each task"),
        (["GREETING"], "also in environment_variables"),
        (["TOKEN", "TOKEN"], "each variable once"),
        ("TOKEN", "list of strings"),
    ],
)
def test_bad_secret_names_are_refused_naming_the_field(source_dir, names, problem):
    with pytest.raises(SpecError) as err:
        hpctf.TensorFlow(
            source_directory=source_dir,
            entry_script="train.py",
            environment_variables={"GREETING": "hi"},
            secret_environment_variables=names,
        )
    assert "secret_environment_variables" in str(err.value) and problem in str(err.value)


def test_a_missing_secret_is_named_before_anything_is_written(source_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("T21_ABSENT", raising=False)
    monkeypatch.setenv("T21_PRESENT", "x")
    spec = hpctf.TensorFlow(
        source_directory=source_dir,
        entry_script="train.py",
        compute_target="local",
        secret_environment_variables=["T21_PRESENT", "T21_ABSENT"],
    )
    home = tmp_path / "home"
    with pytest.raises(HpctfError, match=r"T21_ABSENT is not set") as err:
        hpctf.submit(spec, home=home)
    assert "T21_PRESENT" not in str(err.value)
    assert not home.exists()


def test_render_names_a_secret_and_never_holds_its_value(source_dir, monkeypatch):
    value = "v-" + secrets.token_hex(8)
    monkeypatch.setenv("T21_TOKEN", value)
    spec = hpctf.TensorFlow(
        source_directory=source_dir,
        entry_script="train.py",
        distributed_backend="mpi",
        launcher="mpirun",
        secret_environment_variables=["T21_TOKEN"],
    )
    script = hpctf.render_script(spec)
    assert value not in script
    assert "# secret from the submitting environment: T21_TOKEN" in script
    assert "-x T21_TOKEN" in script  # mpirun forwards it to every rank


# ---------------------------------------------------------------------------------------
# The local target: a real run
# ---------------------------------------------------------------------------------------


def hpctf_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    def umask():
        os.umask(0o022)

    return subprocess.run(
        [sys.executable, "-m", "hpctf.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        preexec_fn=umask,
    )


def test_local_run_is_private_and_every_rank_gets_the_secret_from_no_file(tmp_path):
    src = tmp_path / "project"
    src.mkdir()
    (src / "secret_probe.py").write_bytes((PROGRAMS / "secret_probe.py").read_bytes())
    value = "s-" + secrets.token_hex(12)
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HPCTF_HOME": str(home),
        "T21_TOKEN": value,
        "PYTHONPATH": str(Path(hpctf.__file__).parent.parent),
    }
    options = ["--target", "local", "--backend", "mpi", "--procs-per-node", "2", "--secret-env", "T21_TOKEN"]
    options += [
        "--env",
        "SECRET_NAME=T21_TOKEN",
        "--env",
        f"SECRET_SHA256={hashlib.sha256(value.encode()).hexdigest()}",
    ]
    rendered = hpctf_cli("render", *options, str(src / "secret_probe.py"), env=env)
    dry = hpctf_cli("submit", "--dry-run", "--json", *options, str(src / "secret_probe.py"), env=env)
    done = hpctf_cli("submit", "--wait", "--json", *options, str(src / "secret_probe.py"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = json.loads(done.stdout.splitlines()[0])["job_id"]
    status = hpctf_cli("status", "--json", job_id, env=env)
    for output in (rendered, dry, done, status):
        assert output.returncode == 0, output.stderr
        assert value not in output.stdout + output.stderr
    logs = [hpctf_cli("logs", job_id, "--task", str(rank), env=env).stdout for rank in (0, 1)]
    assert [line for log in logs for line in log.splitlines() if line.startswith("SECRET")] == [
        f"SECRET rank={rank} host={os.uname().nodename} ok" for rank in (0, 1)
    ]
    assert files_holding(home, value.encode()) == []
    assert open_to_others(home) == {}


@pytest.mark.root
def test_a_target_shares_its_runs_with_a_group(tmp_path, monkeypatch):
    group = grp.getgrgid(os.getegid()).gr_name
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.team]\nexecutor = "local"\nshare_with_group = "{group}"\n')
    monkeypatch.setenv("HPCTF_CONFIG", str(config))
    src = tmp_path / "project"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    home = tmp_path / "home"
    old = os.umask(0o022)
    try:
        job = hpctf.submit(
            hpctf.TensorFlow(source_directory=src, entry_script="train.py", compute_target="team"), home=home
        )
        assert job.result() == 0
    finally:
        os.umask(old)
    run = job.run_dir
    assert stat.S_IMODE(run.stat().st_mode) == 0o2750 and run.stat().st_gid == os.getegid()
    assert stat.S_IMODE((run / "job.sbatch").stat().st_mode) == 0o640
    assert stat.S_IMODE((run / "code" / "train.py").stat().st_mode) == 0o440
    assert stat.S_IMODE((home / "registry.sqlite").stat().st_mode) == 0o600  # the history stays the user's
    assert stat.S_IMODE(home.stat().st_mode) == 0o711  # searchable, not listable
    assert "umask 027" in (run / "job.sbatch").read_text()
    assert all(mode & 0o007 == 0 for mode in modes(run).values()), modes(run)
    # Opening the history again leaves the shared run alone.
    Registry(home / "registry.sqlite").close()
    assert stat.S_IMODE(run.stat().st_mode) == 0o2750


# ---------------------------------------------------------------------------------------
# Environment caches that others can write
# ---------------------------------------------------------------------------------------


SHARED_GROUP = "users" if any(g.gr_name == "users" for g in grp.getgrall()) else "daemon"


@pytest.mark.parametrize(
    "mode, group, refused",
    [
        (0o700, None, None),
        (0o755, None, None),
        (0o777, None, "everyone can write it"),
        (0o1777, None, None),
        (0o770, SHARED_GROUP, f"its group {SHARED_GROUP} can write it"),
        (0o770, "own", None),  # a user-private group (umask 002): the owner's alone
    ],
)
@pytest.mark.root  # chgrp to a group the test's user is not in
def test_a_cache_folder_others_can_write_is_refused(tmp_path, mode, group, refused):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(mode)
    if group == "own":
        import pwd

        me = pwd.getpwuid(os.geteuid())
        assert grp.getgrgid(me.pw_gid).gr_name == me.pw_name, "the test needs a user-private group"
        os.chown(cache, -1, me.pw_gid)
    elif group is not None:
        os.chown(cache, -1, grp.getgrnam(group).gr_gid)
    prefix = cache / "pip-0123456789abcdef"
    if refused is None:
        envs.check_cache(cache, prefix)
        return
    with pytest.raises(envs.EnvironmentBuildError) as err:
        envs.check_cache(cache, prefix)
    message = str(err.value)
    assert refused in message and str(cache) in message and "chmod go-w" in message


@pytest.mark.root
def test_a_trusted_group_may_write_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o770)
    os.chown(cache, -1, grp.getgrnam(SHARED_GROUP).gr_gid)
    with pytest.raises(envs.EnvironmentBuildError):
        envs.check_cache(cache, cache / "pip-x")
    envs.check_cache(cache, cache / "pip-x", trust_group=SHARED_GROUP)


def test_an_environment_folder_others_can_write_is_refused_on_a_cache_hit(tmp_path):
    cache = make_folder(tmp_path / "cache")
    prefix = cache / "pip-0123456789abcdef"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin").chmod(0o777)
    with pytest.raises(envs.EnvironmentBuildError, match=r"bin: everyone can write it"):
        envs.check_cache(cache, prefix)


def test_ensure_refuses_before_building(tmp_path, capsys):
    cache = tmp_path / "open-cache"
    cache.mkdir()
    cache.chmod(0o777)
    code = envs.main(["ensure", "--cache", str(cache), "--pip", "nothing-is-installed", "--tensorflow", ""])
    assert code == 1
    err = capsys.readouterr().err
    assert f"the environment cache {cache} is not safe to use" in err and "everyone can write it" in err
    assert list(cache.iterdir()) == []


def test_targets_check_names_a_cache_others_can_write(tmp_path):
    from hpctf.executors.slurm.check import _site_paths
    from hpctf.targets import Target

    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    [finding] = _site_paths(Target(name="lab", env_cache=str(cache)))
    assert finding.check == "env_cache" and finding.status == "MISMATCH"
    assert "everyone can write it" in finding.detail and "chmod go-w" in finding.detail
    cache.chmod(0o700)
    assert _site_paths(Target(name="lab", env_cache=str(cache)))[0].status == "ok"


@pytest.mark.root
def test_a_file_shared_with_two_groups_stays_readable_by_each(tmp_path):
    """Two targets shared with different groups submit the same file: the stored object
    cannot belong to both groups, so the second run gets a copy of its own rather than
    taking the object (and the first run's file, a link to it) from the first group."""
    from hpctf.private import Sharing
    from hpctf.snapshot import materialise, scan

    first, second = (grp.getgrnam(name) for name in ("daemon", SHARED_GROUP if SHARED_GROUP != "daemon" else "bin"))
    src = tmp_path / "project"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    runs = tmp_path / "runs"
    for entry in (first, second):
        materialise(scan(src), tmp_path / "objects", runs / entry.gr_name, Sharing(entry.gr_gid, entry.gr_name))
    for entry in (first, second):
        st = (runs / entry.gr_name / "train.py").stat()
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (entry.gr_gid, 0o440), entry.gr_name
    # A private run still links to the stored object.
    materialise(scan(src), tmp_path / "objects", runs / "mine")
    assert (runs / "mine" / "train.py").stat().st_nlink >= 2


def test_tightening_the_data_folder_keeps_a_shared_runs_code_readable_by_its_group(tmp_path, umask_022):
    """A shared run's code files are hard links to objects its group may read (0440): the
    objects store is tightened when the data folder is found open, but not those."""
    from hpctf.private import MARKER, Sharing
    from hpctf.snapshot import materialise, scan

    home = tmp_path / "home"
    private_home(home)
    src = tmp_path / "project"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    (src / "old.py").write_text("print('old')\n")
    group = grp.getgrgid(os.getegid())
    run = home / "runs" / "shared"
    make_folder(run, Sharing(group.gr_gid, group.gr_name))
    manifest = scan(src)
    materialise(manifest, home / "objects", run / "code", Sharing(group.gr_gid, group.gr_name))
    sha = manifest.files["old.py"][0]
    left_open = home / "objects" / sha[:2] / sha
    left_open.chmod(0o444)  # as an older hpctf left its objects: tightened
    (home / MARKER).unlink()  # never checked: everything is looked at
    private_home(home)
    assert stat.S_IMODE((run / "code" / "train.py").stat().st_mode) == 0o440
    assert stat.S_IMODE(left_open.stat().st_mode) == 0o400
