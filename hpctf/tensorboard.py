"""TensorBoard over recorded runs (``hpctf tensorboard``): which runs, their event folders
(``tensorboard/``, the job's ``$HPCTF_TENSORBOARD_DIR``) under which names, and the
TensorBoard command that serves them.

TensorBoard is a separate program run as a child (:mod:`hpctf.serve`): hpctf never imports
it, nor the TensorFlow it loads. Runs are passed with ``--logdir_spec NAME:DIR,...``, so
each shows as ``<job id>-<job name>``: event files right in a run's folder as
``NAME/.`` (TensorBoard's own naming), Keras's ``train/`` and ``validation/`` as
``NAME/train`` and ``NAME/validation``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import HpctfError
from .registry import Registry, RunRecord
from .runpaths import RunPaths

INSTALL_HINT = "TensorBoard is not installed here: pip install tensorboard (or hpctf[tensorboard])"
LAST_RUNS = 10  # without JOB: the newest runs

# Seconds between TensorBoard's looks for new events. Its default is 5; writers flush every
# 2 minutes by default (tf.summary.create_file_writer, Keras's TensorBoard callback), and
# every look lists and reads each run's folder, on what is usually a shared file system.
RELOAD_S = 30.0

# TensorBoard's output, less TensorFlow's C++ start-up notes (oneDNN, CPU features), which
# would otherwise be most of the lines shown when TensorBoard fails. The user's value wins.
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "1"}

READY_PATH = "/data/environment"  # a small JSON answer, once TensorBoard serves


@dataclass(frozen=True)
class BoardRun:
    """One run on the board."""

    name: str  # '<job id>-<job name>', as logdir_spec takes it
    job_id: str
    folder: Path  # its tensorboard/ folder
    events: int  # event files in it now

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "job_id": self.job_id, "folder": str(self.folder), "events": self.events}


def safe_name(text: str) -> str:
    """``text`` as a run name logdir_spec keeps whole: it splits runs at ',' and a name from
    its folder at the first ':', and a name starting with '/' is taken for a folder."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def count_events(folder: Path) -> int:
    """TensorBoard event files under ``folder`` (``events.out.tfevents.*``), subfolders too."""
    return sum(1 for _ in folder.rglob("*tfevents*")) if folder.is_dir() else 0


def select(registry: Registry, jobs: Iterable[str], last: int = LAST_RUNS) -> list[RunRecord]:
    """The runs ``jobs`` names, or without any the newest ``last`` (0: all); an HpctfError
    names a job the history does not know, or says the history is empty."""
    jobs = list(dict.fromkeys(jobs))
    if jobs:
        return [registry.get(job_id, anywhere=True) for job_id in jobs]  # files: any cluster's run
    records = list(registry.runs(limit=last or None))
    if not records:
        raise HpctfError(f"no runs in {registry.path} yet: submit one first (hpctf submit)")
    return records


def board_runs(records: Iterable[RunRecord]) -> list[BoardRun]:
    """The runs as TensorBoard will name them; a name two runs would share (a job id that
    came back after a cluster was rebuilt) gets the second one a '-2'."""
    runs: list[BoardRun] = []
    taken: set[str] = set()
    for record in records:
        base = safe_name(f"{record.job_id}-{record.name}")
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        folder = RunPaths.of(record).tensorboard
        runs.append(BoardRun(name, record.job_id, folder, count_events(folder)))
    return runs


def logdir_spec(runs: Iterable[BoardRun]) -> str:
    """``NAME:DIR,NAME:DIR``; a folder with ',' in its path cannot be written in it."""
    runs = list(runs)
    for run in runs:
        if "," in str(run.folder):
            raise HpctfError(f"job {run.job_id}: TensorBoard cannot be given a folder with ',' in it: {run.folder}")
    return ",".join(f"{run.name}:{run.folder}" for run in runs)


def find_tensorboard() -> list[str] | None:
    """How to start TensorBoard: the ``tensorboard`` program beside this Python (its
    virtual environment's), else this Python's ``-m tensorboard.main``, else one on PATH
    (a site's module); None when there is none. Nothing is imported."""
    beside = Path(sys.executable).parent / "tensorboard"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    if importlib.util.find_spec("tensorboard") is not None:
        return [sys.executable, "-m", "tensorboard.main"]
    on_path = shutil.which("tensorboard")
    return [on_path] if on_path else None


def command(tensorboard: list[str], runs: Iterable[BoardRun], port: int, reload_s: float = RELOAD_S) -> list[str]:
    """The TensorBoard command serving ``runs`` on 127.0.0.1:``port``. ``--reload_multifile``:
    every task of a distributed job may write its own event file into the same folder, and
    TensorBoard otherwise follows only the newest file of each folder."""
    from .serve import LOCALHOST

    return [
        *tensorboard,
        "--logdir_spec",
        logdir_spec(runs),
        "--host",
        LOCALHOST,
        "--port",
        str(port),
        "--reload_interval",
        f"{reload_s:g}",
        "--reload_multifile",
        "true",
    ]


def environment() -> dict[str, str]:
    """TensorBoard's environment: this one, with :data:`QUIET_TF` where the user set nothing."""
    return {**QUIET_TF, **os.environ}
