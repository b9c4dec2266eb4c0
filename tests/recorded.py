"""Recorded runs without a scheduler: a run folder laid out as ``hpctf submit`` lays it out
(logs/, outputs/, tensorboard/, metrics/) and its row in a private run history, for the
commands that only read what a run left (outputs, tensorboard)."""

from __future__ import annotations

import time
from pathlib import Path

from hpctf.registry import Registry, RunRecord
from hpctf.runpaths import RunPaths, kept_dirs


def private_home(tmp_path: Path, monkeypatch) -> Path:
    """An empty hpctf home of the test's own, for the CLI (CliRunner), the API and the
    commands the test starts (``$HPCTF_HOME``)."""
    home = tmp_path / "hpctf-home"
    monkeypatch.setenv("HPCTF_HOME", str(home))
    return home


def slurm_record(run_dir: Path, log_dir: Path, **fields) -> RunRecord:
    """A Slurm run's history row (a 2x1 mpi job 21, PENDING) with ``fields`` changed; for
    tests of what hpctf makes of a record without a scheduler."""
    return RunRecord(
        **{
            "job_id": "21",
            "target": "slurm",
            "name": "t",
            "backend": "mpi",
            "shape": "2x1",
            "run_dir": str(run_dir),
            "log_dir": str(log_dir),
            "command": "",
            "submitted": time.time(),
            "state": "PENDING",
            "spec": "{}",
            **fields,
        }
    )


def record_run(
    home: Path, job_id: str, name: str = "train", target: str = "local", spec: str = "{}", sweep: str | None = None
) -> RunPaths:
    """A finished run ``job_id`` in ``home``'s history; its (empty) folders made. ``sweep``:
    a sweep's settings as JSON, which makes it a recorded sweep."""
    run = RunPaths.new(home, name)
    run.logs.mkdir(parents=True)
    for folder in kept_dirs(run.run_dir).values():
        folder.mkdir()
    registry = Registry(run.registry)
    try:
        registry.add(
            RunRecord(
                job_id=job_id,
                target=target,
                name=name,
                backend="single",
                shape="1x1",
                run_dir=str(run.run_dir),
                log_dir=str(run.logs),
                command="",
                submitted=time.time(),
                state="COMPLETED",
                exit_code=0,
                spec=spec,
                sweep=sweep,
            )
        )
    finally:
        registry.close()
    return run
