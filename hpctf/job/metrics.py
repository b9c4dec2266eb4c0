"""Metrics from the training script: ``hpctf.log_metric("loss", 0.21, step=12)``.

Like Azure ML's ``run.log``: each call appends one JSON line to the task's own file in
the run folder, ``$HPCTF_METRICS_DIR/rank-<R>.jsonl``::

    {"name":"loss","step":12,"value":0.21,"time":1764783600.123}

which ``hpctf metrics``, ``hpctf status`` and ``job.metrics()`` read on the login node.

- **Rank 0 logs**, the other ranks' calls return at once: in data-parallel training
  every rank holds the same model and (after Horovod's ``MetricAverageCallback``) the
  same metrics. ``all_ranks=True`` logs from every rank; the file's name tags the rank.
- **Safe on NFS and when a task dies**: one writer per file (its rank); each call is one
  ``write`` of whole lines on an ``O_APPEND`` descriptor, nothing is buffered in Python.
  A reader ignores a last line without its newline. A file left ending in half a line
  (a node died mid-write) gets a newline before the next attempt's first line, so the
  damage stays on one line that readers skip.
- **NaN and infinities are kept** (JSON's ``NaN``/``Infinity`` tokens, which Python's
  json reads): a diverging loss is worth seeing. A value that is not a number, a name
  that is empty or holds control characters, or a bad step is not logged; the first
  time for each name a line on stderr says why. Training goes on: a metric is never
  worth a crash.
- **Fast**: ~2 us a call (a float, a format, a ``write``); the file is opened once.
  Outside an hpctf job (no ``HPCTF_METRICS_DIR``) calls do nothing, after one line on
  stderr saying so.

Standard library only; no TensorFlow (values from TensorFlow or NumPy go through
``float()``).
"""

from __future__ import annotations

import math
import operator
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

METRICS_DIR_ENV = "HPCTF_METRICS_DIR"
MAX_NAME_LENGTH = 200


def metrics_file_name(rank: int) -> str:
    return f"rank-{rank}.jsonl"


class MetricsWriter:
    """One task's metrics file: the open descriptor, each name's quoted form and next step."""

    def __init__(self, folder: str | None, rank: int):
        self.folder, self.rank = folder, rank
        self.fd: int | None = None
        self.names: dict[str, str] = {}  # name -> its JSON string, once checked
        self.next_step: dict[str, int] = {}
        self.warned: set[str] = set()

    def write(self, metrics: Mapping[str, Any], step: Any) -> None:
        now = f"{time.time():.3f}"
        lines = []
        for name, value in metrics.items():
            line = self.line(name, value, step, now)
            if line:
                lines.append(line)
        if lines:
            self.append("".join(lines))

    def line(self, name: Any, value: Any, step: Any, now: str) -> str | None:
        quoted = self.names.get(name) if isinstance(name, str) else None
        if quoted is None:
            problem = name_problem(name)
            if problem:
                return self.refuse(name, problem)
            quoted = self.names[name] = json_string(name)
        if isinstance(value, float):
            number = value
        else:
            if isinstance(value, (str, bytes)):
                return self.refuse(name, f"value {value!r} is not a number")
            try:
                number = float(value)
            except (TypeError, ValueError):
                return self.refuse(name, f"value {value!r} is not a number (int, float, or a 0-d array or tensor)")
        if step is None:
            step_number = self.next_step.get(name, 0)
        else:
            try:
                step_number = operator.index(step)
            except TypeError:
                step_number = -1
            if step_number < 0 or isinstance(step, bool):
                return self.refuse(name, f"step {step!r} is not an integer >= 0")
        self.next_step[name] = step_number + 1
        return f'{{"name":{quoted},"step":{step_number},"value":{json_number(number)},"time":{now}}}\n'

    def refuse(self, name: Any, problem: str) -> None:
        key = repr(name)
        if key not in self.warned:
            self.warned.add(key)
            print(f"hpctf.log_metric: {name!r}: {problem}: not logged", file=sys.stderr)
        return None

    def append(self, text: str) -> None:
        if self.fd is None:
            if not self.folder:  # not in a job, or the file could not be written
                if self.folder is None:
                    self.refuse("*", f"not in an hpctf job (${METRICS_DIR_ENV} is not set), so metrics are not kept")
                    self.folder = ""
                return
            self.fd = self.open()
            if self.fd is None:
                return
        try:
            os.write(self.fd, text.encode())
        except OSError as err:  # a full disk, a quota: training goes on without metrics
            self.give_up(err)

    def open(self) -> int | None:
        path = os.path.join(self.folder, metrics_file_name(self.rank))
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # end the half line an earlier attempt left
            return fd
        except OSError as err:
            self.give_up(err)
            return None

    def give_up(self, err: OSError) -> None:
        self.refuse("*", f"cannot write to {self.folder}: {err}; metrics are no longer kept")
        self.folder, self.fd = "", None


def name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "a metric name must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"a metric name must be at most {MAX_NAME_LENGTH} characters"
    if not name.isprintable():
        return "a metric name must not hold control characters or line breaks"
    return None


def json_string(text: str) -> str:
    if text.isascii() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # printable ASCII: JSON writes it as it is
    import json

    return json.dumps(text)


def json_number(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


_writer: MetricsWriter | None = None


def writer() -> MetricsWriter:
    """This process's writer, made on first use from the task's environment."""
    global _writer
    if _writer is None:
        rank = os.environ.get("HPCTF_RANK", "0")
        _writer = MetricsWriter(os.environ.get(METRICS_DIR_ENV), int(rank) if rank.isdigit() else 0)
    return _writer


def log_metric(name: str, value: Any, step: int | None = None, *, all_ranks: bool = False) -> None:
    """Keep ``value`` of metric ``name`` at ``step`` (None: the name's previous step + 1,
    from 0). Only rank 0 logs unless ``all_ranks``."""
    w = _writer or writer()
    if w.rank == 0 or all_ranks:
        w.write({name: value}, step)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, *, all_ranks: bool = False) -> None:
    """:func:`log_metric` for every item of ``metrics``, in one write."""
    w = _writer or writer()
    if w.rank == 0 or all_ranks:
        w.write(metrics, step)
