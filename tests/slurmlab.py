"""Access to the project's real test cluster (tests/slurm/cluster.sh) for the Slurm suite."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLUSTER_SH = Path(__file__).resolve().parent / "slurm" / "cluster.sh"

# Open MPI refuses to run as root unless told twice; the test cluster runs jobs as root.
MPI_AS_ROOT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


@dataclass
class Cluster:
    """A running test cluster: its environment and a few small helpers."""

    env: dict[str, str]
    lab_env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args),
            env={**self.env, **kw.pop("env", {})},
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            **kw,
        )

    def sbatch(self, script: Path, *flags: str) -> str:
        done = self.run("sbatch", "--parsable", *flags, str(script))
        return done.stdout.strip().split(";")[0]

    def job_state(self, job_id: str) -> tuple[str, str]:
        """(state, exit code 'N:S') from scontrol, which answers while the job is known."""
        out = self.run("scontrol", "show", "job", "-o", job_id, check=False).stdout
        state = re.search(r"JobState=(\S+)", out)
        code = re.search(r" ExitCode=(\S+)", out)
        return (state.group(1) if state else "UNKNOWN", code.group(1) if code else "")

    def wait(self, job_id: str, timeout: float = 120) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, code = self.job_state(job_id)
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "UNKNOWN", "REQUEUED"):
                return state, code
            time.sleep(0.3)
        self.run("scancel", job_id, check=False)
        raise TimeoutError(f"job {job_id} still {state} after {timeout}s")

    def sacct(self, job_id: str, timeout: float = 20) -> dict[str, tuple[str, str]]:
        """{JobID: (State, ExitCode)} from accounting; sacct lags squeue by a few seconds."""
        deadline = time.monotonic() + timeout
        rows: dict[str, tuple[str, str]] = {}
        while time.monotonic() < deadline:
            out = self.run("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode", check=False).stdout
            rows = {r.split("|")[0]: (r.split("|")[1], r.split("|")[2]) for r in out.splitlines() if r.count("|") == 2}
            if job_id in rows and rows[job_id][0] not in ("PENDING", "RUNNING", "COMPLETING"):
                return rows
            time.sleep(0.5)
        return rows


def start_cluster(**knobs: str) -> Cluster:
    """Start (or reuse) a cluster; raise with its output if it does not come up.

    ``knobs`` are cluster.sh settings without their prefix: ``start_cluster(ACCT="0")``
    sets HPCTF_LAB_ACCT=0; ``LAB`` sets HPCTF_LAB.
    """
    t0 = time.monotonic()
    lab_env = {**os.environ, **{("HPCTF_LAB" if k == "LAB" else f"HPCTF_LAB_{k}"): v for k, v in knobs.items()}}
    done = subprocess.run(["bash", str(CLUSTER_SH), "start"], capture_output=True, text=True, timeout=900, env=lab_env)
    if done.returncode != 0:
        raise RuntimeError(f"test cluster did not start:\n{done.stdout}\n{done.stderr}")
    env = dict(os.environ)
    for line in subprocess.run(
        ["bash", str(CLUSTER_SH), "env"], capture_output=True, text=True, check=True, env=lab_env
    ).stdout.splitlines():
        m = re.match(r"export (\w+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    env.update(MPI_AS_ROOT)
    print(f"test cluster ready in {time.monotonic() - t0:.1f}s")
    return Cluster(env=env, lab_env=lab_env)


def fault(cluster: Cluster, *args: str) -> str:
    """Inject a fault with cluster.sh (kill-node NODE, revive-node NODE, stop-ctld, start-ctld)."""
    done = subprocess.run(
        ["bash", str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=300, env=cluster.lab_env
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stop_cluster(cluster: Cluster) -> None:
    subprocess.run(["bash", str(CLUSTER_SH), "stop"], capture_output=True, text=True, timeout=300, env=cluster.lab_env)
