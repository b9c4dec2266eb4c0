"""The one line ``hpctf status`` and ``hpctf submit --wait`` show while a job runs:
``step 12  loss=0.21  accuracy=0.93``, from the end of rank 0's file.

Only the file's tail is read (it is asked every second while a job is followed): the
latest line gives the latest step, and every name whose own latest line has that step
is shown, in the order the names were logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..runpaths import RunPaths

TAIL_BYTES = 64 * 1024


def latest(run_dir: str | Path, rank: int = 0) -> tuple[int, dict[str, float]] | None:
    """(latest step, {name: value}) from rank ``rank``'s file; None before any point."""
    path = RunPaths(Path(run_dir)).metrics / f"rank-{rank}.jsonl"
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None
    lines = tail[: max(0, tail.rfind(b"\n"))].decode("utf-8", "replace").split("\n")  # the half-written line left out
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first line of a tail is most likely cut at its start
    seen: dict[str, tuple[int, float]] = {}
    last_step = None
    for line in reversed(lines):
        point = _point(line)
        if point is None:
            continue
        name, step, value = point
        if last_step is None:
            last_step = step
        seen.setdefault(name, (step, value))
    if last_step is None:
        return None
    names = [name for name in reversed(seen) if seen[name][0] == last_step]
    return last_step, {name: seen[name][1] for name in names}


def _point(line: str) -> tuple[str, int, float] | None:
    try:
        obj = json.loads(line)
        name, step, value = obj["name"], obj["step"], obj["value"]
    except (ValueError, KeyError, TypeError):
        return None
    if type(name) is not str or type(step) is not int or type(value) not in (int, float):
        return None
    return name, step, float(value)


def latest_text(run_dir: str | Path) -> str | None:
    """'step 12  loss=0.21  accuracy=0.93', or None before rank 0 logged anything."""
    found = latest(run_dir)
    if found is None:
        return None
    step, values = found
    return "  ".join([f"step {step}", *(f"{name}={value:.4g}" for name, value in values.items())])
