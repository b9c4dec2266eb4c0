"""Everything one run folder holds of metrics: every rank's ``metrics/rank-<R>.jsonl``
(rank 0 first), then the scalars of ``tensorboard/``'s event files."""

from __future__ import annotations

from pathlib import Path

from ..runpaths import RunPaths
from .events import read_events
from .jsonl import rank_files, read_rank_file
from .series import RunMetrics


def read_run(run_dir: str | Path, tensorboard: bool = True) -> RunMetrics:
    """The metrics of the run in ``run_dir``. With ``tensorboard=False`` the event files
    are left alone (``hpctf status`` needs only hpctf's own files)."""
    paths = RunPaths(Path(run_dir))
    found = RunMetrics(paths.run_dir)
    for rank, path in rank_files(paths.metrics):
        series, damaged = read_rank_file(path, rank)
        found.series += series
        if damaged:
            found.damaged[str(path)] = damaged
    if tensorboard:
        series, notes = read_events(paths.tensorboard)
        found.series += series
        found.notes += notes
    for path, count in found.damaged.items():
        found.notes.append(f"{path}: {count} damaged line(s) skipped (not JSON, or not a point)")
    return found
