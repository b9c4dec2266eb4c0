"""Helpers for the tests that train for real on the test cluster: submit through the CLI
and read every task's log. (Their `tensorflow` marker makes conftest check the stack.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HPCTF = str(Path(sys.executable).with_name("hpctf"))


def all_logs(log_dir: Path, job_id: str) -> str:
    return "\n".join(
        f"===== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(log_dir.glob(f"{job_id}_*_log.*"))
    )


def task_log(log_dir: Path, job_id: str, task: int, stream: str = "out") -> str:
    path = log_dir / f"{job_id}_{task}_log.{stream}"
    return path.read_text(errors="replace") if path.exists() else ""


def hpctf_env(slurm, home: Path, **extra: str) -> dict[str, str]:
    """The environment a user's shell on the login node would have: the cluster's, a
    private hpctf home, and no TF_USE_LEGACY_KERAS unless the test sets one."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return {**env, **slurm.env, "HPCTF_HOME": str(home), **extra}


def submit_cli(
    slurm, home: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> tuple[str, Path]:
    """`hpctf submit --json --wait ARGS`; (job id, log dir). Prints every log if it failed."""
    env = env or hpctf_env(slurm, home)
    done = subprocess.run(
        [HPCTF, "submit", "--json", "--wait", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert done.stdout.strip(), f"hpctf submit printed nothing:\n{done.stderr}"
    record = json.loads(done.stdout.splitlines()[0])
    log_dir = Path(record["log_dir"])
    assert done.returncode == 0, f"job {record['job_id']} failed:\n{done.stderr}\n{all_logs(log_dir, record['job_id'])}"
    return record["job_id"], log_dir
