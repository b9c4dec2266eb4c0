"""Code snapshots: the source directory as it was at submit time.

Files are stored once, by content hash, in ``<home>/objects`` (read-only), and each run
gets its own tree of hard links to them in ``<run>/code``: the job runs from that tree,
so editing the source after submitting never changes a queued or running job, identical
files cost no extra space, and files a job writes stay in its own run folder.

``.hpctfignore`` (gitignore syntax) in the source directory leaves files out. A file
whose stat data has not changed since the last snapshot of its folder is not read again
(:mod:`hpctf.hashcache`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HpctfError
from .hashcache import HashCache, key_of
from .private import Sharing, make_folder

IGNORE_FILE = ".hpctfignore"
# Left out even without an ignore file: version control, caches, environments, old logs.
DEFAULT_IGNORES = [
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.pyc",
    ".ipynb_checkpoints/",
    ".venv/",
    "venv/",
    ".tox/",
    ".pytest_cache/",
    ".mypy_cache/",
    "hpctf-logs/",
]
DEFAULT_LIMIT_MB = 300  # Azure ML's snapshot limit; raise with --snapshot-limit-mb
LIMIT_ENV = "HPCTF_SNAPSHOT_LIMIT_MB"


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds: relative path -> (sha256, executable)."""

    source: Path
    files: dict[str, tuple[str, bool]]
    total_bytes: int
    # The hashes as the scan saw them, kept once the snapshot is stored (a dry run or a
    # refused submit writes nothing).
    hashes: HashCache | None = field(default=None, compare=False, repr=False)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self.files):
            sha, exe = self.files[rel]
            h.update(f"{rel}\0{sha}\0{int(exe)}\n".encode())
        return h.hexdigest()[:16]


def snapshot_limit_mb(override: float | None = None) -> float:
    if override is not None:
        return override
    return float(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT_MB))


def scan(source: Path, limit_mb: float | None = None, home: Path | None = None) -> Manifest:
    """Hash every file to snapshot; refuse, naming the biggest files, above the limit.

    With ``home``, a file whose stat data is unchanged since the last scan of this folder
    is not read again: its hash comes from the stat cache (:mod:`hpctf.hashcache`).
    """
    import pathspec

    source = Path(source)
    cache = HashCache.for_source(home, source.absolute())
    patterns = list(DEFAULT_IGNORES)
    ignore_file = source / IGNORE_FILE
    if ignore_file.is_file():
        patterns += ignore_file.read_text().splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    # Files are matched against the patterns that can match a file: a folder pattern
    # ("venv/") matches only what is inside that folder, and the walk never enters it.
    # A negation ("!keep/") can bring such a file back, so with one every pattern is tried.
    # Without one, a file is left out when any file pattern matches it: their regexes,
    # tried directly, cost a tenth of pathspec's match_file on a folder of 2,000 files.
    if any(line.lstrip().startswith("!") for line in patterns):
        ignored = spec.match_file
    else:
        file_spec = pathspec.GitIgnoreSpec.from_lines(line for line in patterns if not line.rstrip().endswith("/"))
        regexes = [p.regex.match for p in file_spec.patterns if p.include]

        def ignored(rel: str) -> bool:
            return any(match(rel) for match in regexes)

    limit = snapshot_limit_mb(limit_mb) * 1024 * 1024

    stats: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not spec.match_file(rel_dir + d + "/")]
        for name in filenames:
            rel = rel_dir + name
            if ignored(rel):
                continue
            try:
                st = os.stat(f"{dirpath}/{name}")  # follows a link to a file
            except OSError:
                continue  # a dangling link
            if stat.S_ISREG(st.st_mode):
                stats[rel] = st
    total = sum(st.st_size for st in stats.values())
    if total > limit:
        sizes = sorted(((r, st.st_size) for r, st in stats.items()), key=lambda x: -x[1])
        biggest = ", ".join(f"{r} ({s / 2**20:.1f} MB)" for r, s in sizes[:3])
        raise HpctfError(
            f"source_directory {source} holds {total / 2**20:.1f} MB to snapshot, above the "
            f"{limit / 2**20:.0f} MB limit (largest: {biggest}). Leave data out with {IGNORE_FILE} "
            f"(gitignore syntax) or raise the limit: --snapshot-limit-mb N or {LIMIT_ENV}=N"
        )
    files = {}
    lookup, record = cache.lookup, cache.record
    for rel, st in stats.items():
        key = key_of(st)
        found = lookup(rel, key)
        if found is None:
            path = os.path.join(source, rel)
            found = (_sha256(path), os.access(path, os.X_OK))
        record(rel, key, *found)
        files[rel] = found
    return Manifest(source=source, files=files, total_bytes=total, hashes=cache)


def materialise(manifest: Manifest, objects: Path, dest: Path, sharing: Sharing | None = None) -> None:
    """Store new objects and build ``dest`` as a tree of hard links to them; then keep
    the scan's hashes for the next snapshot of the same folder.

    Objects are read-only and owner-only (a link shares its file's mode); a run shared
    with a group (``sharing``) makes the objects it links to readable by that group."""
    make_folder(objects)
    made: set[str] = set()  # folders known to exist: one mkdir each, not one per file

    def folder(path: str, group: Sharing | None = None) -> None:
        if path not in made:
            make_folder(path, group)
            made.add(path)

    store, tree = str(objects), str(dest)
    for rel, (sha, exe) in manifest.files.items():
        name = sha + ("x" if exe else "")
        obj = f"{store}/{sha[:2]}/{name}"
        target = f"{tree}/{rel}"
        parent = target.rpartition("/")[0]
        if parent not in made:
            folder(parent, sharing)
        if sharing is None:
            try:
                os.link(obj, target)  # the object is usually stored already
                continue
            except OSError:  # not stored yet, or no hard links here: below
                pass
        mode = (0o550 if exe else 0o440) if sharing else (0o500 if exe else 0o400)
        if not os.path.exists(obj):  # a new object: stored read-only, never written again
            folder(f"{store}/{sha[:2]}")
            tmp = f"{store}/{sha[:2]}/.{name}.{os.getpid()}"
            path = os.path.join(manifest.source, rel)
            shutil.copyfile(path, tmp)
            if manifest.hashes is not None and not manifest.hashes.unchanged(rel, os.stat(path)):
                # Written since the scan hashed it: the copy may not be what the hash says,
                # and a wrong object would be linked by every later run of that hash.
                if _sha256(tmp) != sha:
                    os.unlink(tmp)
                    raise HpctfError(f"{path} changed while it was being snapshotted: submit again")
            os.chmod(tmp, mode)
            if sharing:
                os.chown(tmp, -1, sharing.gid)
            os.replace(tmp, obj)
        elif sharing and ((st := os.stat(obj)).st_gid != sharing.gid or stat.S_IMODE(st.st_mode) != mode):
            if st.st_gid != sharing.gid and st.st_mode & 0o040:
                # Already another group's (a target shared with that one): giving it to
                # this group would take it from the other's runs. This run gets a copy.
                _copy(obj, target, mode, sharing)
                continue
            os.chown(obj, -1, sharing.gid)
            os.chmod(obj, mode)
        try:
            os.link(obj, target)
        except OSError:  # another file system, or no hard links: a plain copy
            _copy(obj, target, stat.S_IMODE(os.stat(obj).st_mode), sharing)
    if manifest.hashes is not None:
        manifest.hashes.save()


def _copy(obj: str, target: str, mode: int, sharing: Sharing | None) -> None:
    shutil.copyfile(obj, target)
    if sharing is not None:
        os.chown(target, -1, sharing.gid)
    os.chmod(target, mode)


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
