"""The snapshot's stat cache: an unchanged folder is not read again, a change always is.

Reads are counted with an audit hook on ``open`` (every ``open()`` of a file, whoever
calls it), so the tests see what the scan really reads, not what hpctf says it reads.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from hpctf import hashcache, snapshot

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # cannot be removed: it records only while a test asks


def reads(source: Path, home: Path) -> tuple[snapshot.Manifest, list[str]]:
    """Snapshot ``source`` as a submit does, with the cache in ``home``: (manifest, files
    of ``source`` the scan opened). The snapshot is then stored, which keeps the hashes."""
    global _opened
    _opened = []
    try:
        manifest = snapshot.scan(source, home=home)
    finally:
        opened, _opened = _opened, None
    snapshot.materialise(manifest, home / "objects", home / "runs" / str(time.time_ns()))
    prefix = str(source) + os.sep
    return manifest, sorted(os.path.relpath(p, source) for p in opened if p.startswith(prefix))


@pytest.fixture
def racy_window(monkeypatch) -> float:
    """A short racy window (0.2 s, not 2 s) so the tests can wait it out; seconds."""
    monkeypatch.setattr(hashcache, "RACY_NS", 200_000_000)
    return 0.25


@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "src"
    for i in range(20):
        (src / f"pkg{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"pkg{i % 3}" / f"m{i}.py").write_text(f"VALUE = {i:04d}\n")
    (src / "train.py").write_text("print('hi')\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    return src


def test_unchanged_folder_is_not_read_again(tmp_path, tree, racy_window):
    home = tmp_path / "home"
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    first, opened = reads(tree, home)
    assert opened == files  # no cache yet: every file read
    # Just written, the files are racily clean: read again until they are older than a scan.
    time.sleep(racy_window)
    assert reads(tree, home)[1] == files
    again, opened = reads(tree, home)
    assert opened == []
    assert again.files == first.files and again.digest == first.digest
    assert again.files["run.sh"][1] is True and again.files["train.py"][1] is False


def test_rewrite_with_mtime_put_back_is_noticed_by_ctime(tmp_path, tree, racy_window):
    home = tmp_path / "home"
    target = tree / "pkg1" / "m1.py"
    time.sleep(racy_window)
    before, _ = reads(tree, home)
    time.sleep(racy_window)  # well past the racy window: only the stat data can tell
    old = target.stat()
    target.write_text("VALUE = 9999\n")  # same size, same inode
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = target.stat()
    assert (new.st_size, new.st_mtime_ns, new.st_ino) == (old.st_size, old.st_mtime_ns, old.st_ino)
    after, opened = reads(tree, home)
    assert opened == ["pkg1/m1.py"]
    assert after.files["pkg1/m1.py"][0] == snapshot._sha256(target) != before.files["pkg1/m1.py"][0]


def test_chmod_is_noticed(tmp_path, tree, racy_window):
    home = tmp_path / "home"
    time.sleep(racy_window)
    reads(tree, home)
    time.sleep(racy_window)
    (tree / "train.py").chmod(0o755)
    after, opened = reads(tree, home)
    assert opened == ["train.py"] and after.files["train.py"][1] is True


def coarse(real_stat):
    """``os.stat`` as on a file system with one-second timestamps (ext3, many NFS servers)."""

    def stat_(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        second = 1_000_000_000
        return types.SimpleNamespace(
            st_mode=st.st_mode,
            st_size=st.st_size,
            st_ino=st.st_ino,
            st_dev=st.st_dev,
            st_mtime_ns=st.st_mtime_ns // second * second,
            st_ctime_ns=st.st_ctime_ns // second * second,
        )

    return stat_


def test_change_within_the_same_second_is_noticed(tmp_path, tree, monkeypatch):
    """The racily-clean case: rewritten in the second of the scan, with one-second
    timestamps and the same size the stat data is identical; the file is read anyway."""
    home = tmp_path / "home"
    target = tree / "pkg2" / "m2.py"
    while time.time() % 1 > 0.5:  # start early in a second: both writes and the scan fit in it
        time.sleep(0.05)
    second = time.time_ns() // 1_000_000_000
    target.write_text("VALUE = 1111\n")
    with monkeypatch.context() as patched:
        patched.setattr(os, "stat", coarse(os.stat))
        before, _ = reads(tree, home)
        target.write_text("VALUE = 2222\n")  # same size, same inode, same second
        after, opened = reads(tree, home)
        seen = os.stat(target)
    assert time.time_ns() // 1_000_000_000 == second, "the machine was too slow to stay within one second"
    assert seen.st_mtime_ns == seen.st_ctime_ns == second * 1_000_000_000  # the stat data cannot tell
    assert "pkg2/m2.py" in opened
    assert after.files["pkg2/m2.py"][0] == snapshot._sha256(target) != before.files["pkg2/m2.py"][0]


def test_deleted_added_and_renamed_files_are_noticed(tmp_path, tree, racy_window):
    home = tmp_path / "home"
    time.sleep(racy_window)
    reads(tree, home)
    time.sleep(racy_window)
    reads(tree, home)
    (tree / "pkg0" / "m0.py").unlink()
    (tree / "pkg0" / "m3.py").rename(tree / "pkg0" / "renamed.py")
    (tree / "new.py").write_text("NEW = 1\n")
    after, opened = reads(tree, home)
    assert "pkg0/m0.py" not in after.files and "pkg0/m3.py" not in after.files
    assert after.files["new.py"][0] == snapshot._sha256(tree / "new.py")
    assert after.files["pkg0/renamed.py"][0] == snapshot._sha256(tree / "pkg0" / "renamed.py")
    assert opened == ["new.py", "pkg0/renamed.py"]  # nothing else read


def cache_file(home: Path) -> Path:
    (found,) = list((home / "cache" / "hashes").iterdir())
    return found


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"{not json",
        b'{"version": 2, "source": 1, "started_ns": "x", "files": []}',
        b"\x00" * 100,
        "wrong entries",
    ],
)
def test_damaged_cache_is_no_cache(tmp_path, tree, racy_window, damage):
    home = tmp_path / "home"
    time.sleep(racy_window)
    good, _ = reads(tree, home)
    path = cache_file(home)
    if damage == "wrong entries":  # valid JSON, the right source, nonsense in every entry
        data = json.loads(path.read_bytes())
        data["files"] = {
            rel: ["x", None, 3] if i % 2 else [*entry[:5], "f" * 64, "yes"]
            for i, (rel, entry) in enumerate(data["files"].items())
        }
        path.write_text(json.dumps(data))
    else:
        path.write_bytes(damage)
    again, opened = reads(tree, home)
    assert again.files == good.files
    assert len(opened) == len(good.files)  # every file read again
    assert json.loads(cache_file(home).read_bytes())["version"] == hashcache.VERSION  # and the cache rebuilt


def test_cache_is_private_and_per_folder(tmp_path, tree):
    home = tmp_path / "home"
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.py").write_text("A = 1\n")
    old = os.umask(0)  # the most open umask: the cache must be private all the same
    try:
        reads(tree, home)
        reads(other, home)
    finally:
        os.umask(old)
    folder = home / "cache" / "hashes"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "cache").stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    sources = {json.loads(f.read_bytes())["source"] for f in files}
    assert sources == {str(tree), str(other)}


def test_unwritable_cache_still_snapshots(tmp_path, tree):
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "hashes").write_text("")  # where the cache folder should be
    for _ in range(2):
        manifest, opened = reads(tree, home)
        assert len(manifest.files) == len(opened) == 22


def test_dry_run_keeps_no_hashes(tmp_path, tree):
    home = tmp_path / "home"
    snapshot.scan(tree, home=home)
    assert not home.exists()


SCAN = """
import json, os, sys
from pathlib import Path
from hpctf import snapshot
home = Path(sys.argv[2])
m = snapshot.scan(Path(sys.argv[1]), home=home)
snapshot.materialise(m, home / "objects", home / "runs" / str(os.getpid()))
print(json.dumps(m.files, sort_keys=True))
"""


def test_concurrent_scans_all_see_the_folder(tmp_path, tree):
    home = tmp_path / "home"
    for i in range(200):  # enough files that the scans overlap
        (tree / f"bulk{i}.txt").write_text(f"{i}\n" * 100)
    env = {**os.environ, "PYTHONPATH": str(Path(snapshot.__file__).parents[1])}
    expected = json.dumps(snapshot.scan(tree).files, sort_keys=True)
    for _ in range(2):  # once with no cache, once with the one the first round left
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SCAN, str(tree), str(home)], stdout=subprocess.PIPE, text=True, env=env
            )
            for _ in range(8)
        ]
        outs = [p.communicate(timeout=120)[0].strip() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert outs == [expected] * 8
        data = json.loads(cache_file(home).read_bytes())  # one complete file, no leftovers
        assert sorted(data["files"]) == sorted(json.loads(expected))
        assert [p.name for p in (home / "cache" / "hashes").iterdir()] == [cache_file(home).name]


def test_resubmit_on_slurm_runs_the_changed_code(slurm, home, tree):
    """End to end: submit, rewrite a module in place (same size, mtime put back),
    resubmit at once; the second job runs the new code, the first the old."""
    from .test_submit import cli, submit_json, wait_state

    (tree / "helper.py").write_text("VALUE = 'first'\n")
    (tree / "show.py").write_text("import helper\nprint('helper says', helper.VALUE, flush=True)\n")
    jobs = [submit_json(slurm, home, str(tree / "show.py"))["job_id"]]
    old = (tree / "helper.py").stat()
    (tree / "helper.py").write_text("VALUE = 'later'\n")
    os.utime(tree / "helper.py", ns=(old.st_atime_ns, old.st_mtime_ns))
    jobs.append(submit_json(slurm, home, str(tree / "show.py"))["job_id"])
    for job, value in zip(jobs, ("first", "later"), strict=True):
        assert wait_state(slurm, home, job, {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
        assert f"helper says {value}" in cli(slurm, home, "logs", job).stdout


@pytest.mark.parametrize(
    "ignore_lines",
    [[], ["*.bin", "docs/", "/top.txt", "deep/**/x.py"], ["*.bin", "!keep.bin", "docs/"]],
    ids=["defaults", "file-and-folder-patterns", "with-a-negation"],
)
def test_the_snapshot_leaves_out_what_gitignore_rules_say(tmp_path, ignore_lines):
    """Files are matched with the file patterns' regexes alone when there is no negation:
    the snapshot must still hold exactly the files pathspec's gitignore rules keep."""
    import pathspec

    src = tmp_path / "src"
    names = [
        "train.py", "a.pyc", "x/b.pyc", "x/c.py", "data/big.bin", "keep.bin", "venv/lib.py", "sub/venv/x.py",
        "sub/.venvy/x.py", "docs/a.md", "sub/docs/b.md", "top.txt", "sub/top.txt", "deep/a/b/x.py", "deep/y.py",
        ".git/HEAD", "__pycache__/m.cpython-311.pyc", "notes.txt",
    ]  # fmt: skip
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(name)
    (src / snapshot.IGNORE_FILE).write_text("\n".join(ignore_lines) + "\n")
    rules = pathspec.GitIgnoreSpec.from_lines(snapshot.DEFAULT_IGNORES + ignore_lines)
    kept = {n for n in [*names, snapshot.IGNORE_FILE] if not rules.match_file(n)}
    assert set(snapshot.scan(src).files) == kept
    assert "train.py" in kept and "a.pyc" not in kept and "sub/.venvy/x.py" in kept


def test_only_the_folders_written_last_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(hashcache, "KEEP", 3)
    home = tmp_path / "home"
    folders = []
    for i in range(5):
        folders.append(tmp_path / f"src{i}")
        folders[-1].mkdir()
        (folders[-1] / "a.py").write_text(f"A = {i}\n")
        reads(folders[-1], home)
        time.sleep(0.01)  # distinct mtimes
    kept = {json.loads(f.read_bytes())["source"] for f in (home / "cache" / "hashes").iterdir()}
    assert kept == {str(f) for f in folders[2:]}


def test_a_file_changed_between_the_scan_and_the_copy_is_not_stored_under_the_old_hash(tmp_path, tree):
    """The object store is content-addressed: an object whose bytes are not its hash would
    be linked by every later run of that hash (the stat cache would never notice)."""
    home = tmp_path / "home"
    manifest = snapshot.scan(tree, home=home)
    target = tree / "train.py"
    target.write_text("print('HI')\n")  # same size, written after the scan hashed it
    with pytest.raises(snapshot.HpctfError, match="train.py changed while it was being snapshotted"):
        snapshot.materialise(manifest, home / "objects", home / "runs" / "r1")
    for obj in (home / "objects").rglob("*"):
        if obj.is_file():
            assert snapshot._sha256(obj) == obj.name.rstrip("x"), obj
    # A file only touched (the same bytes) is stored as usual.
    manifest = snapshot.scan(tree, home=home)
    os.utime(target)
    snapshot.materialise(manifest, home / "objects", home / "runs" / "r2")
    assert (home / "runs" / "r2" / "train.py").read_text() == "print('HI')\n"
