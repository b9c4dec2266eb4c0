"""The snapshot's stat cache: a file's hash, kept while its stat data stays the same.

Resubmitting a source folder would read and hash every file again.  Instead each
folder's last scan is kept in ``$HPCTF_HOME/cache/hashes/<folder>.json``: for every file
its size, mtime, ctime, inode and device, and the hash read then.  A file whose stat data
is unchanged is taken from the cache without being opened; anything else is read.

The stat data can lie in one case, the one git calls *racily clean*: a file rewritten
within the file system's timestamp granularity of its last write keeps its size and mtime.
Git re-reads an entry whose mtime is not older than the index file; here an entry is
trusted only when its mtime and ctime are at least ``RACY_NS`` older than the moment its
scan began (two seconds: FAT's granularity, above ext3's and NFS's one second, and room
for a file server's clock to run a little ahead of this machine's).  A younger entry is
read again, and trusted by a later scan once it is old enough.  A rewrite that puts the
mtime back (``touch -r``, ``os.utime``) still changes the ctime, which nobody can set.

The cache is private (0600 in a 0700 folder), written whole to a temporary file and
renamed into place (so concurrent submits each see a complete file, the last writer
wins), and a damaged or unreadable cache is no cache. The ``KEEP`` folders written
last are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

RACY_NS = 2_000_000_000
VERSION = 2
KEEP = 100  # source folders whose hashes are kept

# [size, mtime_ns, ctime_ns, inode, device]: what must match for a cached hash to stand
# (a list, as JSON reads it back). chmod changes the ctime, so the executable bit is kept
# beside the hash.
Key = list[int]


def key_of(st: os.stat_result) -> Key:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class HashCache:
    """``lookup`` a file's (hash, executable) by its stat data; ``save`` what this scan saw."""

    def __init__(self, file: Path | None, source: Path):
        self.file = file
        self.source = str(source)
        self.started_ns = time.time_ns()  # before any file of this scan is looked at
        self._old: dict[str, list] = {}
        self._old_started_ns = 0
        self._new: dict[str, list] = {}
        self._hits = 0
        if file is not None:
            self._load()

    @classmethod
    def for_source(cls, home: Path | None, source: Path) -> HashCache:
        """The cache of ``source`` (an absolute path) under ``home``; none without a home."""
        if home is None:
            return cls(None, source)
        from .runpaths import hash_cache_dir

        name = hashlib.sha256(str(source).encode()).hexdigest()[:32]
        return cls(hash_cache_dir(home) / f"{name}.json", source)

    def _load(self) -> None:
        try:
            data = json.loads(self.file.read_bytes())
            if data["version"] != VERSION or data["source"] != self.source:
                return
            started, files = int(data["started_ns"]), data["files"]
            if not isinstance(files, dict):
                return
        except (OSError, ValueError, KeyError, TypeError):
            return  # no cache, or a damaged one: every file is read
        self._old, self._old_started_ns = files, started

    def lookup(self, rel: str, key: Key) -> tuple[str, bool] | None:
        """The cached (hash, executable) of ``rel`` if its stat data is unchanged and old
        enough to trust."""
        entry = self._old.get(rel)
        if type(entry) is not list or len(entry) != 7 or entry[:5] != key:
            return None
        if max(key[1], key[2]) + RACY_NS > self._old_started_ns:
            return None  # racily clean: it may have changed within its timestamp's granularity
        sha, exe = entry[5:]
        if not (isinstance(sha, str) and len(sha) == 64 and isinstance(exe, bool)):
            return None
        self._hits += 1
        return sha, exe

    def unchanged(self, rel: str, st: os.stat_result) -> bool:
        """Whether ``rel``'s stat data is still what this scan saw when it hashed it."""
        entry = self._new.get(rel)
        return entry is not None and entry[:5] == key_of(st)

    def record(self, rel: str, key: Key, sha: str, exe: bool) -> None:
        self._new[rel] = key + [sha, exe]

    def save(self) -> None:
        """Replace the cache with this scan's files, unless every file was a trusted hit
        (then it already says all there is); a cache that cannot be written is skipped."""
        if self.file is None or (self._hits == len(self._new) == len(self._old)):
            return
        import tempfile

        data = {"version": VERSION, "source": self.source, "started_ns": self.started_ns, "files": self._new}
        try:
            self.file.parent.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the home
            for folder in (self.file.parent.parent, self.file.parent):
                folder.mkdir(exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".", suffix=".tmp")  # 0600
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(data, separators=(",", ":")))  # json.dump to a file is pure Python
                os.replace(tmp, self.file)
            except BaseException:
                os.unlink(tmp)
                raise
            self._forget_old_folders()
        except OSError:
            pass  # a read-only or full home: the next submit reads the files again

    def _forget_old_folders(self) -> None:
        """Keep the caches of the ``KEEP`` folders written last: one a folder ever
        submitted (temporary ones too) would pile up. Forgetting costs one full read."""
        caches = [e for e in os.scandir(self.file.parent) if e.name.endswith(".json")]
        if len(caches) <= KEEP:
            return
        caches.sort(key=lambda e: e.stat().st_mtime_ns)
        for entry in caches[:-KEEP]:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:  # another submit forgot it first
                pass
