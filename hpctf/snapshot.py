"""Code snapshots: the source directory as it was at submit time.

Files are stored once, by content hash, in ``<home>/objects`` (read-only), and each run
gets its own tree of hard links to them in ``<run>/code``: the job runs from that tree,
so editing the source after submitting never changes a queued or running job, identical
files cost no extra space, and files a job writes stay in its own run folder.

``.hpctfignore`` (gitignore syntax) in the source directory leaves files out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import HpctfError
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


def scan(source: Path, limit_mb: float | None = None) -> Manifest:
    """Hash every file to snapshot; refuse, naming the biggest files, above the limit."""
    import pathspec

    source = Path(source)
    patterns = list(DEFAULT_IGNORES)
    ignore_file = source / IGNORE_FILE
    if ignore_file.is_file():
        patterns += ignore_file.read_text().splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    limit = snapshot_limit_mb(limit_mb) * 1024 * 1024

    sizes: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not spec.match_file(rel_dir + d + "/")]
        for name in filenames:
            rel = rel_dir + name
            path = os.path.join(dirpath, name)
            if spec.match_file(rel) or not os.path.isfile(path):
                continue
            sizes[rel] = os.path.getsize(path)
    total = sum(sizes.values())
    if total > limit:
        biggest = ", ".join(f"{r} ({s / 2**20:.1f} MB)" for r, s in sorted(sizes.items(), key=lambda x: -x[1])[:3])
        raise HpctfError(
            f"source_directory {source} holds {total / 2**20:.1f} MB to snapshot, above the "
            f"{limit / 2**20:.0f} MB limit (largest: {biggest}). Leave data out with {IGNORE_FILE} "
            f"(gitignore syntax) or raise the limit: --snapshot-limit-mb N or {LIMIT_ENV}=N"
        )
    files = {rel: (_sha256(source / rel), os.access(source / rel, os.X_OK)) for rel in sizes}
    return Manifest(source=source, files=files, total_bytes=total)


def materialise(manifest: Manifest, objects: Path, dest: Path, sharing: Sharing | None = None) -> None:
    """Store new objects and build ``dest`` as a tree of hard links to them.

    Objects are read-only and owner-only (a link shares its file's mode); a run shared
    with a group (``sharing``) makes the objects it links to readable by that group."""
    make_folder(objects)
    for rel, (sha, exe) in manifest.files.items():
        obj = objects / sha[:2] / (sha + ("x" if exe else ""))
        mode = (0o550 if exe else 0o440) if sharing else (0o500 if exe else 0o400)
        if not obj.exists():
            make_folder(obj.parent)
            tmp = obj.with_name(f".{obj.name}.{os.getpid()}")
            shutil.copyfile(manifest.source / rel, tmp)
            os.chmod(tmp, mode)  # objects are shared by runs: never written again
            if sharing:
                os.chown(tmp, -1, sharing.gid)
            os.replace(tmp, obj)
        elif sharing and (obj.stat().st_gid != sharing.gid or stat.S_IMODE(obj.stat().st_mode) != mode):
            os.chown(obj, -1, sharing.gid)
            os.chmod(obj, mode)
        target = dest / rel
        make_folder(target.parent, sharing)
        try:
            os.link(obj, target)
        except OSError:  # another file system, or no hard links: a plain copy
            shutil.copyfile(obj, target)
            os.chmod(target, stat.S_IMODE(obj.stat().st_mode))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
