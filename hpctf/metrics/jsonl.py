"""Reading ``hpctf.log_metric``'s files, ``metrics/rank-<R>.jsonl``: one JSON object a line,
``{"name":"loss","step":12,"value":0.21,"time":1764783600.123}``.

The file may be in any state a job leaves it in: its last line half-written (the writer is
at it, or died): left out, silently; a damaged line in the middle (a node died mid-write
and a requeued attempt appended after it): skipped and counted; steps logged again after
a requeue: the later line wins (:meth:`Series.settle`).

How it is read, by measurement (1,000,000 points, one name, 79 MB, this project's 2-core
development machine, best of 3; the time to parse unless said otherwise):

- ``json.loads`` line by line: 4030 ms;
- the whole file as one JSON array (``"[" + text.replace("\\n", ",") + "]"``): 940 ms;
- the same in chunks of 8192 lines: 1060 ms;
- the same with each object rewritten as a list (``["loss",12,0.21,...]``): 1090 ms;
- splitting on the keys (four ``str.replace``, one ``split``, ``map(float)``): 1240 ms;
- a regular expression (``findall``): 800 ms for the match alone, before any ``float()``;
- numpy (byte positions of ``:`` and ``,``, fields gathered and cast): 2100 ms;
- one flat array (``bytes.translate``: braces to spaces, ``:`` and newlines to commas,
  ``["name","loss","step",12,...]``): 650 ms to parse, but 1690 ms read and summarised
  against 1580 ms for the array of dicts (the keys become 4,000,000 strings to make and
  free, where the dicts share theirs).

So: the whole file as one array; only where that fails (a damaged line) chunks of
:data:`CHUNK_LINES` lines, and line by line only inside a chunk that fails. Columns are
taken out with ``map(itemgetter)`` (C loops, ~40 ms a column) and checked by the set of
their types, not object by object (~300 ms more for a million). In all, read and
summarised: 1580 ms in a warm process, 1680 ms for ``hpctf metrics`` from a fresh one
(line by line it would be ~4.5 s); JSON's own parsing is two thirds of it.
"""

from __future__ import annotations

import json
import re
from itertools import compress
from operator import itemgetter
from pathlib import Path

from .series import Series

RANK_FILE = re.compile(r"rank-(\d+)\.jsonl")
CHUNK_LINES = 4096
FIELDS = ("name", "step", "value", "time")
_NUMBER = {int, float}


def rank_files(metrics_dir: Path) -> list[tuple[int, Path]]:
    """(rank, file) for every ``rank-<R>.jsonl`` in ``metrics_dir``, by rank."""
    try:
        entries = list(metrics_dir.iterdir())
    except OSError:  # not there (yet), or not readable
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := RANK_FILE.fullmatch(p.name)) and p.is_file()]
    return sorted(found)


def complete_text(data: bytes) -> str:
    """The complete lines of ``data`` (the half-written last one left out), as text;
    bytes that are not UTF-8 (a line cut inside a character) become U+FFFD."""
    end = data.rfind(b"\n")
    return data[:end].decode("utf-8", "replace") if end >= 0 else ""


def read_rank_file(path: Path, rank: int) -> tuple[list[Series], int]:
    """The series of one rank's file, in the order their names first appear, and how many
    lines were damaged (not JSON, or not a point)."""
    try:
        text = complete_text(path.read_bytes())
    except OSError:
        return [], 0
    if not text:
        return [], 0
    try:
        objects, damaged = json.loads("[" + text.replace("\n", ",") + "]"), 0
    except ValueError:
        objects, damaged = _in_chunks(text.split("\n"))
    series, not_points = _columns(objects, rank)
    return series, damaged + not_points


def _in_chunks(lines: list[str]) -> tuple[list, int]:
    """The objects of ``lines``, some of them damaged: whole chunks where they parse, line
    by line where not. Blank lines are skipped and not counted."""
    objects: list = []
    damaged = 0
    for start in range(0, len(lines), CHUNK_LINES):
        chunk = [line for line in lines[start : start + CHUNK_LINES] if line.strip()]
        try:
            objects += json.loads("[" + ",".join(chunk) + "]")
            continue
        except ValueError:
            pass
        for line in chunk:
            try:
                objects.append(json.loads(line))
            except ValueError:
                damaged += 1
    return objects, damaged


def _columns(objects: list, rank: int) -> tuple[list[Series], int]:
    """Series from parsed lines, and how many were not points. The fast way groups the
    objects by name and checks whole columns at once; any odd object sends all of them
    the careful way."""
    try:
        names = list(map(itemgetter("name"), objects))
        if not set(map(type, names)) <= {str}:  # before grouping: str.__eq__ compares strings only
            raise ValueError("a name that is not a string")
        groups = _by_name(objects, names)
        series = [_series(name, group, rank) for name, group in groups.items()]
    except (KeyError, TypeError, IndexError, ValueError):
        return _careful(objects, rank)
    return series, 0


def _by_name(objects: list, names: list) -> dict:
    """The objects of each name, names in the order they first appear. Few names (the
    usual case): one C pass a name (``compress``); many: one Python pass."""
    distinct = list(dict.fromkeys(names))
    if len(distinct) == 1:
        return {distinct[0]: objects}
    if len(distinct) <= 8:
        return {name: list(compress(objects, map(name.__eq__, names))) for name in distinct}
    groups: dict = {name: [] for name in distinct}
    for obj, name in zip(objects, names):
        groups[name].append(obj)
    return groups


def _series(name, objects: list, rank: int) -> Series:
    """One name's points, their types checked by column; ValueError if one is not a point."""
    steps, values, times = (list(map(itemgetter(key), objects)) for key in FIELDS[1:])
    value_types = set(map(type, values))
    if not (
        set(map(type, steps)) <= {int}
        and min(steps) >= 0
        and value_types <= _NUMBER
        and set(map(type, times)) <= _NUMBER
    ):
        raise ValueError(name)
    if int in value_types:  # `"value": 3` is a point too, kept as a float like the rest
        values = list(map(float, values))
    return Series(name, rank, steps, values, times).settle()


def _careful(objects: list, rank: int) -> tuple[list[Series], int]:
    """Object by object: what is a point is kept, the rest counted. ``time`` may be
    missing (None); ``step`` must be an int >= 0 and ``value`` a number (bools are not)."""
    by_name: dict[str, Series] = {}
    bad = 0
    for obj in objects:
        point = _point(obj)
        if point is None:
            bad += 1
            continue
        name, step, value, time = point
        s = by_name.get(name) or by_name.setdefault(name, Series(name, rank))
        s.steps.append(step)
        s.values.append(value)
        s.times.append(time)
    return [s.settle() for s in by_name.values()], bad


def _point(obj) -> tuple[str, int, float, float | None] | None:
    if not isinstance(obj, dict):
        return None
    name, step, value, time = (obj.get(key) for key in FIELDS)
    if type(name) is not str or type(step) is not int or step < 0 or type(value) not in _NUMBER:
        return None
    return name, step, float(value), (float(time) if type(time) in _NUMBER else None)
