"""A run's outputs: what the training kept in ``$HPCTF_OUTPUT_DIR`` (models, checkpoints,
SavedModels), listed and copied out (``hpctf outputs``).

Folders are walked without following links to folders (a link back up would never end);
a link to a file counts as the file it points to.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import HpctfError

COLUMNS = ("PATH", "SIZE", "MODIFIED")
SHOWN_CLASHES = 5  # a refusal names this many of the files it would overwrite


@dataclass(frozen=True)
class OutputFile:
    path: str  # relative to the outputs folder, '/'-separated
    size: int  # bytes
    modified: float  # epoch seconds

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "modified": self.modified}


def list_files(folder: Path) -> list[OutputFile]:
    """Every file under ``folder``, by path; none when the folder is not there (the job
    has not started, or it ran before hpctf kept outputs)."""
    files = []
    for top, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            path = Path(top) / name
            try:
                info = path.stat()
            except OSError:  # a dangling link, or removed while we looked
                continue
            files.append(OutputFile(path.relative_to(folder).as_posix(), info.st_size, info.st_mtime))
    return sorted(files, key=lambda f: f.path)


def size_text(size: float) -> str:
    """Bytes as a cell: '512 B', '1.5 KiB', '2.0 GiB'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while size >= 1024 and power < len(units) - 1:
        size, power = size / 1024, power + 1
    return f"{size:.0f} B" if power == 0 else f"{size:.1f} {units[power]}"


def rows(files: list[OutputFile]) -> list[tuple[str, str, str]]:
    """One row a file, in the order of :data:`COLUMNS`."""
    from .table import when

    return [(f.path, size_text(f.size), when(f.modified)) for f in files]


def copy_files(folder: Path, files: list[OutputFile], dest: Path, force: bool = False) -> list[Path]:
    """Copy ``files`` (from :func:`list_files`) to the same places under ``dest``; the
    copies. Unless ``force``, nothing is copied when any of them is already there: a half
    copy next to older files would be a model that never existed."""
    targets = [(folder / f.path, dest / f.path) for f in files]
    folders = [str(target) for _, target in targets if target.is_dir()]
    if folders:
        raise HpctfError(f"a folder is where a file would go: {', '.join(folders[:SHOWN_CLASHES])}; nothing copied")
    if not force:
        clashes = [str(target) for _, target in targets if target.exists() or target.is_symlink()]
        if clashes:
            more = f" and {len(clashes) - SHOWN_CLASHES} more" if len(clashes) > SHOWN_CLASHES else ""
            raise HpctfError(
                f"{len(clashes)} file(s) already in {dest}: {', '.join(clashes[:SHOWN_CLASHES])}{more}; "
                "nothing copied (--force overwrites them)"
            )
    for source, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # --force: replace the link, never write through it
            target.unlink()
        shutil.copy2(source, target)
    return [target for _, target in targets]
