"""Owner-only files and folders, whatever the umask.

Everything hpctf writes under its data folder (run folders, code snapshots, logs, the
registry, sweep files) holds the user's code, scripts and settings, and clusters often
let every user read home directories; a login node's umask is usually 022. So hpctf
gives each folder it makes mode 0700 and each file 0600 explicitly, at creation, instead
of changing the process umask (the API runs in notebooks, whose other files are not
hpctf's business). What a job creates follows the ``umask`` its script sets
(:data:`JOB_UMASK`).

A site may share a target's runs with one group (``share_with_group`` in its profile):
those run folders are the group's, readable by it (:class:`Sharing`), marked by the
set-group-id bit on their folders, which also makes what the job creates there the
group's. The data folder and ``runs/`` are then searchable (x) but not listable by
others (0711): nothing in them can be read without its exact name and the rights on it.

Folders and files found open to group or others are tightened when hpctf next opens its
data folder, with one line saying so (:func:`private_home`).
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600
JOB_UMASK = 0o077  # what a job's own files get: owner-only
# Written in the data folder once every file in it has been checked: later opens look at
# the folder and the registry alone (two stats), not at every file.
MARKER = ".private"


@dataclass(frozen=True)
class Sharing:
    """Group access to a target's run folders: the group's id and name."""

    gid: int
    group: str

    folder_mode = 0o2750  # set-group-id: what is created inside belongs to the group too
    file_mode = 0o640
    umask = 0o027

    @classmethod
    def of(cls, group: str | None) -> Sharing | None:
        """The sharing a target's ``share_with_group`` asks for; HpctfError for an unknown group."""
        if not group:
            return None
        import grp

        from .errors import HpctfError

        try:
            entry = grp.getgrnam(group)
        except KeyError:
            raise HpctfError(
                f"share_with_group={group!r}: no such group on this machine (see `getent group`)"
            ) from None
        if entry.gr_gid not in os.getgroups() and os.getegid() != entry.gr_gid and os.geteuid() != 0:
            raise HpctfError(
                f"share_with_group={group!r}: you are not a member of this group, "
                "so runs cannot be given to it (see `id`)"
            )
        return cls(entry.gr_gid, group)


def folder_mode(sharing: Sharing | None) -> int:
    return sharing.folder_mode if sharing else FOLDER_MODE


def file_mode(sharing: Sharing | None) -> int:
    return sharing.file_mode if sharing else FILE_MODE


def job_umask(sharing: Sharing | None) -> int:
    return sharing.umask if sharing else JOB_UMASK


def make_folder(path: str | Path, sharing: Sharing | None = None, exist_ok: bool = True) -> Path:
    """``mkdir -p`` whose new folders are owner-only (or the sharing group's); an existing
    ``path`` is left as it is (with ``exist_ok``)."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    if not missing and not exist_ok:
        raise FileExistsError(path)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            if folder == path and not exist_ok:
                raise
            continue
        _set_mode(folder, folder_mode(sharing), sharing)
    return path


def write_file(path: str | Path, data: str | bytes, mode: int | None = None, sharing: Sharing | None = None) -> Path:
    """Write ``data`` to ``path`` whole (readers see the old file or the new one), with
    ``mode`` (default owner-only, or the sharing group's)."""
    path = Path(path)
    mode = file_mode(sharing) if mode is None else mode
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, mode)  # the umask does not apply to fchmod
        if sharing is not None:
            os.fchown(fd, -1, sharing.gid)
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w", closefd=False) as handle:
            handle.write(data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def open_private(path: str | Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode: int = FILE_MODE):
    """A binary file object for ``path`` (appending by default), created with ``mode``
    whatever the umask (an existing file keeps its mode unless it is empty; a device
    such as /dev/stdout is left as it is)."""
    fd = os.open(path, flags, mode)
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        os.fchmod(fd, mode)
    return os.fdopen(fd, "ab" if flags & os.O_APPEND else "wb")


def _set_mode(path: Path, mode: int, sharing: Sharing | None) -> None:
    if sharing is not None:
        os.chown(path, -1, sharing.gid)
    os.chmod(path, mode)


# ---------------------------------------------------------------------------------------
# Tightening what an older hpctf (or a chmod) left open
# ---------------------------------------------------------------------------------------


def too_open(mode: int, is_folder: bool) -> bool:
    """Readable or writable by group or others. A folder with bare search (x) bits for
    them is left so (what share_with_group sets on the folders above a shared run):
    nothing in it can be listed, and what is inside has modes of its own."""
    allowed = 0o011 if is_folder else 0
    return bool(stat.S_IMODE(mode) & 0o077 & ~allowed)


def tighten(path: Path, st: os.stat_result | None = None) -> bool:
    """Take group and other access away from ``path`` (not a link); True if it had any."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return False
    folder = stat.S_ISDIR(st.st_mode)
    if not too_open(st.st_mode, folder):
        return False
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
    return True


def shared_by_hpctf(st: os.stat_result) -> bool:
    """A run folder given to a group (``share_with_group``): its set-group-id bit says so."""
    return stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_ISGID)


def shared_object(st: os.stat_result) -> bool:
    """A stored snapshot file a group-shared run links to: read-only for its group
    (0440, 0550) and nothing for others. The run's own files are these very inodes."""
    return stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077 in (0o040, 0o050)


def tighten_tree(root: Path, objects: bool = False) -> int:
    """Tighten ``root`` and everything under it, except group-shared run folders (and,
    in the ``objects`` store, the files such runs link to); how many folders and files
    were changed. Files and folders of other users are left alone."""
    changed = 0
    uid = os.geteuid()
    for folder, dirnames, filenames in os.walk(root):
        keep = []
        for name in dirnames:
            path = Path(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if shared_by_hpctf(st):
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in (*keep, *filenames, *(["."] if folder == str(root) else [])):
            path = Path(folder, name)
            try:
                st = os.lstat(path)
                if objects and shared_object(st):
                    continue
                if st.st_uid == uid and tighten(path, st):
                    changed += 1
            except OSError:
                continue
    return changed


# What hpctf keeps directly in its data folder: the rest of the folder is not looked at.
HOME_ENTRIES = ("registry.sqlite", "registry.sqlite-journal", "registry.sqlite-wal", "registry.sqlite-shm", MARKER)
HOME_TREES = ("objects", "runs")


def tighten_home(home: Path) -> int:
    """Tighten the data folder (not a shared, sticky one such as /tmp), hpctf's files in
    it and its ``objects`` and ``runs`` trees; how many were changed."""
    changed = 0
    st = home.stat()
    if st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX and tighten(home, st):
        changed += 1
    for name in HOME_ENTRIES:
        try:
            changed += tighten(home / name)
        except FileNotFoundError:
            pass
    for name in HOME_TREES:
        if (home / name).is_dir():
            changed += tighten_tree(home / name, objects=name == "objects")
    return changed


def private_home(home: str | Path) -> Path:
    """hpctf's data folder, made owner-only if new; if it or the registry is found open to
    others (or it has never been checked), what hpctf keeps in it is tightened, with one
    line on stderr saying so."""
    from .runpaths import registry_file

    home = Path(home)
    if not home.is_dir():
        make_folder(home)
        write_file(home / MARKER, "")
        return home
    registry = registry_file(home)
    try:
        st = home.stat()
        open_home = too_open(st.st_mode, True) and not st.st_mode & stat.S_ISVTX
        open_registry = registry.exists() and too_open(registry.stat().st_mode, False)
    except OSError:
        return home
    if not open_home and not open_registry and (home / MARKER).exists():
        return home
    try:
        changed = tighten_home(home)
        write_file(home / MARKER, "")
    except OSError as err:
        print(f"hpctf: could not make {home} private: {err}", file=sys.stderr)
        return home
    if changed:
        print(
            f"hpctf: {home}: {changed} folder(s) and file(s) were open to group or others; "
            "they are owner-only now (a target's share_with_group shares runs on purpose)",
            file=sys.stderr,
        )
    return home


def open_to_search(*folders: Path) -> None:
    """Let others pass through ``folders`` (x, not r): a group-shared run folder below them
    is reachable by its path, and nothing else in them can be listed."""
    for folder in folders:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o011 != 0o011:
            os.chmod(folder, mode | 0o011)
