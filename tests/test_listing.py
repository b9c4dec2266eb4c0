"""`hpctf ls` over a long history: finished runs are read, never asked about again; the
unfinished ones are refreshed in one scheduler call, with their spec still at hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.registry import Registry, RunRecord

pytestmark = pytest.mark.slurm

HPCTF = str(Path(sys.executable).with_name("hpctf"))

SHIM = """#!/bin/sh
echo "{name} $*" >>{calls}
exec {real} "$@"
"""


def finished_runs(registry: Registry, n: int, logs: Path) -> list[RunRecord]:
    records = []
    registry._db.execute("BEGIN")
    for i in range(n):
        spec = json.dumps({"entry_script": f"train{i}.py", "node_count": 1 + i % 3})
        records.append(
            registry.add(
                RunRecord(
                    job_id=str(900_000 + i),
                    target="slurm",
                    name=f"old-{i}",
                    backend="single",
                    shape="1x1",
                    run_dir=str(logs.parent),
                    log_dir=str(logs),
                    command=f"train{i}.py",
                    submitted=1_700_000_000 + i,
                    state=("COMPLETED", "FAILED", "TIMEOUT")[i % 3],
                    exit_code=i % 3,
                    started=1_700_000_010 + i,
                    ended=1_700_000_020 + i,
                    nodes="node1",
                    spec=spec,
                )
            )
        )
    registry._db.execute("COMMIT")
    return records


def test_ls_reads_finished_runs_and_refreshes_live_ones_in_one_call(slurm, tmp_path):
    home = tmp_path / "home"
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    shims = tmp_path / "shims"
    shims.mkdir()
    calls = tmp_path / "calls"
    env = {**slurm.env, "HPCTF_HOME": str(home)}
    for name in ("sacct", "squeue"):
        real = shutil.which(name, path=env["PATH"])
        (shims / name).write_text(SHIM.format(name=name, calls=calls, real=real))
        (shims / name).chmod(0o755)
    env["PATH"] = f"{shims}:{env['PATH']}"

    def hpctf(*args: str) -> str:
        done = subprocess.run([HPCTF, *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def scheduler_calls() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    registry = Registry(home / "registry.sqlite")
    old = finished_runs(registry, 300, tmp_path / "logs")
    listing = json.loads(hpctf("ls", "-n", "0", "--json"))
    assert scheduler_calls() == 0
    assert listing == [r.to_dict(with_spec=False) for r in reversed(old)]

    # Two held jobs (they never run): both live, refreshed together.
    live = [
        json.loads(
            hpctf(
                "submit",
                "--json",
                "--time",
                "1",
                "--sbatch",
                "hold",
                "--backend",
                "mpi",
                "--nodes",
                str(n),
                str(src / "train.py"),
            )
        )
        for n in (1, 2)
    ]
    try:
        before = scheduler_calls()
        listing = json.loads(hpctf("ls", "-n", "0", "--json"))
        # One sacct for both; squeue once more for both only while accounting lags sbatch.
        made = calls.read_text().splitlines()[before:]
        ids = ",".join(r["job_id"] for r in live)
        assert made[0].startswith("sacct ") and made[0].endswith(f"-j {ids}")
        assert made[1:] in ([], [f"squeue --noheader --states=all --format=%i|%T|%N --jobs {ids}"])
        assert [r["job_id"] for r in listing[:2]] == [live[1]["job_id"], live[0]["job_id"]]
        assert [r["state"] for r in listing[:2]] == ["PENDING", "PENDING"]
        assert listing[2:] == [r.to_dict(with_spec=False) for r in reversed(old)]
        # The read for a listing leaves out finished runs' specs, never a live one's.
        read = {r.job_id: r for r in Registry(home / "registry.sqlite").runs(specs=False)}
        assert json.loads(read[live[1]["job_id"]].spec)["node_count"] == 2
        assert read[old[0].job_id].spec == "{}"
        table = hpctf("ls", "-n", "5")
        assert live[1]["job_id"] in table and "old-299" in table and "old-296" not in table
    finally:
        subprocess.run(["scancel", *(r["job_id"] for r in live)], env=env, check=False)
    assert os.path.exists(home / "registry.sqlite")
