"""Run folders with metrics in them, as a job leaves them, for the metrics tests: rank
files written line by line as ``hpctf.log_metric``'s contract has them, and runs recorded
in a registry the way ``hpctf submit`` records them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from hpctf.registry import Registry, RunRecord
from hpctf.runpaths import RunPaths


def line(name: str, step: int, value: float, time: float = 1764783600.0) -> str:
    """One complete line, compact as the writer makes it (NaN/inf as Python's tokens)."""
    return json.dumps({"name": name, "step": step, "value": value, "time": time}, separators=(",", ":")) + "\n"


def write_rank(run_dir: Path, rank: int, text: str) -> Path:
    path = RunPaths(run_dir).metrics / f"rank-{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def curve(name: str, steps: range, value=lambda step: 1.0 / (step + 1)) -> str:
    return "".join(line(name, step, value(step), 1764783600.0 + step) for step in steps)


def record_run(home: Path, job_id: str, state: str = "COMPLETED", target: str = "local") -> Path:
    """A run of ``home``'s registry with its run folder (logs/ made, no metrics yet)."""
    run = RunPaths(home / "runs" / f"20261203-120000-train-{job_id}")
    run.logs.mkdir(parents=True)
    registry = Registry(home / "registry.sqlite")
    registry.add(
        RunRecord(
            job_id=job_id,
            target=target,
            name="train",
            backend="single",
            shape="1x1",
            run_dir=str(run.run_dir),
            log_dir=str(run.logs),
            command="train.py",
            submitted=1764783600.0,
            state=state,
            exit_code=0 if state == "COMPLETED" else None,
        )
    )
    registry.close()
    return run.run_dir


def event_record(step: int, tag: str, value: float, wall_time: float = 1764783600.0) -> bytes:
    """One TFRecord holding an Event with a TF1 ``simple_value``."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    data = event_pb2.Event(step=step, wall_time=wall_time, summary=summary).SerializeToString()
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))
