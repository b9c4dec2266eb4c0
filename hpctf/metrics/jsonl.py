"""Reading ``hpctf.log_metric``'s files, ``metrics/rank-<R>.jsonl``: one JSON object a line,
``{"name":"loss","step":12,"value":0.21,"time":1764783600.123}``.

The file may be in any state a job leaves it in: its last line half-written (the writer is
at it, or died): left out, silently; a damaged line in the middle (a node died mid-write
and a requeued attempt appended after it): skipped and counted; steps logged again after
a requeue: the later line wins (:meth:`Series.settle`).

How it is read, by measurement (1,000,000 points, 4 names logged together each step,
80 MB, this project's 2-core development machine, in-process):

- Python's ``json``, line by line: ~4 s; the whole file as one JSON array: 0.85 s to
  parse, 2.0 s read and put in columns (a dict a line, then a column a key and name);
- msgspec's typed JSON-lines decoder (``Decoder(Point).decode_lines``): 0.22 s, the
  types checked as it parses (a name is a string, a step an int >= 0, ...); the columns
  are then taken out with ``map(attrgetter)`` (C loops, ~0.1 s for all four) and split
  by name: slices where the names repeat in a fixed order (what ``log_metrics`` and the
  Keras callback write: ~10 ms), a mask a name otherwise (~0.1 s a name). 0.45 s in all;
  ``hpctf metrics`` from a fresh process, summary and table included: see the benchmarks.

``NaN`` and ``Infinity`` (Python's json writes them; strict JSON has none) stop the first
decoding, which takes numbers only; they are then quoted and the file decoded again,
strings allowed, and become floats again by column. Where the
file does not decode in one piece (a damaged line), it is decoded in chunks of
:data:`CHUNK_LINES` lines, and line by line inside a chunk that fails.
"""

from __future__ import annotations

import re
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Annotated

import msgspec

from .series import Series

RANK_FILE = re.compile(r"rank-(\d+)\.jsonl")
CHUNK_LINES = 4096
SPECIAL = ("NaN", "Infinity", "-Infinity")  # the values Python's json writes for non-finite floats


class Point(msgspec.Struct, gc=False):
    """One line: msgspec checks the types while it parses (other keys are ignored)."""

    name: str
    step: Annotated[int, msgspec.Meta(ge=0)]
    value: float
    time: float | None = None


class SpecialPoint(Point, gc=False):
    """A line of a file that holds NaN or infinities, quoted by :func:`_quote_special`."""

    value: float | str


_DECODER = msgspec.json.Decoder(Point)
_SPECIAL_DECODER = msgspec.json.Decoder(SpecialPoint)
_FIELDS = ("step", "value", "time")


def rank_files(metrics_dir: Path) -> list[tuple[int, Path]]:
    """(rank, file) for every ``rank-<R>.jsonl`` in ``metrics_dir``, by rank."""
    try:
        entries = list(metrics_dir.iterdir())
    except OSError:  # not there (yet), or not readable
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := RANK_FILE.fullmatch(p.name)) and p.is_file()]
    return sorted(found)


def complete_lines(data: bytes) -> memoryview:
    """The complete lines of ``data``: the half-written last one left out (a view: no copy)."""
    return memoryview(data)[: data.rfind(b"\n") + 1]


def read_rank_file(path: Path, rank: int) -> tuple[list[Series], int]:
    """The series of one rank's file, in the order their names first appear, and how many
    lines were damaged (not JSON, or not a point)."""
    try:
        data = complete_lines(path.read_bytes())
    except OSError:
        return [], 0
    try:  # every value a number: the usual file, decoded at once
        return _series_of(_DECODER.decode_lines(data), rank, special=False)
    except msgspec.DecodeError:  # ValidationError too: a line that is JSON but not a point
        pass
    data = _quote_special(bytes(data))
    try:
        points, damaged = _SPECIAL_DECODER.decode_lines(data), 0
    except msgspec.DecodeError:
        points, damaged = _in_chunks(data.split(b"\n"))
    series, not_points = _series_of(points, rank, special=True)
    return series, damaged + not_points


def _quote_special(data: bytes) -> bytes:
    """``"value":NaN`` as ``"value":"NaN"`` (and the infinities), which msgspec parses."""
    for token in (t.encode() for t in SPECIAL):
        for end in (b",", b"}"):
            data = data.replace(b":" + token + end, b':"' + token + b'"' + end)
    return data


def _in_chunks(lines: list[bytes]) -> tuple[list[Point], int]:
    """The points of ``lines``, some of them damaged: whole chunks where they decode, line
    by line where not. Blank lines are skipped and not counted."""
    points: list[Point] = []
    damaged = 0
    for start in range(0, len(lines), CHUNK_LINES):
        chunk = [line for line in lines[start : start + CHUNK_LINES] if line.strip()]
        try:
            points += _SPECIAL_DECODER.decode_lines(b"\n".join(chunk))
            continue
        except msgspec.DecodeError:
            pass
        for line in chunk:
            try:
                points.append(_SPECIAL_DECODER.decode(line))
            except msgspec.DecodeError:
                damaged += 1
    return points, damaged


def _series_of(points: list[Point], rank: int, special: bool) -> tuple[list[Series], int]:
    """One series a name, in the order the names first appear; and how many points were
    left out (with ``special``: a string value other than the SPECIAL tokens)."""
    names = list(map(attrgetter("name"), points))
    columns = [list(map(attrgetter(key), points)) for key in _FIELDS]
    series, bad = [], 0
    for name, (steps, values, times) in _by_name(names, columns).items():
        if special and str in set(map(type, values)):
            steps, values, times, left_out = _special_values(steps, values, times)
            bad += left_out
        series.append(Series(name, rank, steps, values, times).settle())
    return series, bad


def _by_name(names: list[str], columns: list[list]) -> dict[str, list[list]]:
    """The columns split by name, names in the order they first appear."""
    distinct = list(dict.fromkeys(names))
    k = len(distinct)
    if k == 1:
        return {distinct[0]: columns}
    # The names repeat in one order (log_metrics, the Keras callback): every k-th point.
    if all((every := names[j::k]).count(name) == len(every) for j, name in enumerate(distinct)):
        return {name: [column[j::k] for column in columns] for j, name in enumerate(distinct)}
    if k <= 8:  # a C pass a name and column
        masks = {name: list(map(name.__eq__, names)) for name in distinct}
        return {name: [list(compress(column, mask)) for column in columns] for name, mask in masks.items()}
    groups: dict[str, list[list]] = {name: [[], [], []] for name in distinct}
    for i, name in enumerate(names):
        for column, group in zip(columns, groups[name]):
            group.append(column[i])
    return groups


def _special_values(steps: list, values: list, times: list) -> tuple[list, list, list, int]:
    """The points whose value is a number or a SPECIAL token (as a float); and how many
    were left out (any other string)."""
    keep = [not isinstance(v, str) or v in SPECIAL for v in values]
    values = [float(v) for v in compress(values, keep)]
    return list(compress(steps, keep)), values, list(compress(times, keep)), keep.count(False)
