"""The benchmark suite runs end to end (`python -m benchmarks --quick`) on the test cluster.

Only that it runs and reports every figure is checked: timings are findings, not pass/fail.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.figures import GROUPS

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slurm


def test_quick_suite_reports_every_figure(slurm, shared_dir):
    out, scratch = shared_dir / "out", shared_dir / "scratch"
    env = {**slurm.env, "HPCTF_HOME": str(shared_dir / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--scratch", str(scratch)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    results = json.loads((out / "results.json").read_text())
    assert [g["name"] for g in results["groups"]] == [g.NAME for g in GROUPS]
    for group in results["groups"]:
        assert group["status"] == "ok", group
        assert group["figures"], f"{group['name']}: no figures"
        for figure in group["figures"]:
            assert isinstance(figure["median"], (int, float)) and math.isfinite(figure["median"]), figure
            assert figure["n"] >= 1 and figure["min"] <= figure["median"] <= figure["max"], figure
    markdown = (out / "results.md").read_text()
    assert all(g.TITLE in markdown for g in GROUPS)
    assert not (shared_dir / "home").exists(), "the suite must use its own HPCTF_HOME, never the caller's"
    queued = slurm.run("squeue", "-h", "-o", "%i %Z %o").stdout  # job id, work dir, script
    assert str(scratch) not in queued, f"the suite left jobs in the queue:\n{queued}"
