"""The benchmark context: interpreter, private folders, environment, and Slurm helpers.

Every command a benchmark runs gets :meth:`Context.env`: the caller's environment with a
private ``HPCTF_HOME`` (never the user's run history), and a bytecode cache of its own
(``PYTHONPYCACHEPREFIX``) with ``PYTHONDONTWRITEBYTECODE`` removed, so that every
process after the first warm-up one reads cached bytecode, as it would from an installed
wheel, and nothing is written into the source tree.  Every job a benchmark creates is
recorded with :meth:`Context.track` and cancelled when its figure group ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .measure import BenchError, run

REPO = Path(__file__).resolve().parent.parent
TRAIN_PY = "print('hello from a benchmark job')\n"


@dataclass
class Context:
    quick: bool
    scratch: Path  # seen by every node of the cluster (the test cluster shares /tmp)
    python: str = sys.executable
    slurm_problem: str | None = None  # why Slurm cannot be used, or None
    jobs: set[str] = field(default_factory=set)

    @property
    def hpctf(self) -> str:
        return str(Path(self.python).parent / "hpctf")

    def repeats(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def sizes(self, full: list[int], quick: list[int]) -> list[int]:
        return quick if self.quick else full

    def env(self, home: Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(self.scratch / "pycache")
        env["HPCTF_HOME"] = str(home or self.scratch / "home")
        env.update(extra)
        return env

    def folder(self, *parts: str) -> Path:
        """A fresh, empty folder under the scratch folder."""
        path = self.scratch.joinpath(*parts)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        path.chmod(0o755)
        return path

    def train_script(self) -> Path:
        """``<scratch>/src/train.py``: the trivial job every submit benchmark sends."""
        src = self.scratch / "src"
        src.mkdir(exist_ok=True)
        (src / "train.py").write_text(TRAIN_PY)
        return src / "train.py"

    # -- jobs ----------------------------------------------------------------------------

    def track(self, job_id: str) -> str:
        self.jobs.add(job_id)
        return job_id

    def cancel_jobs(self) -> None:
        ids = sorted(self.jobs, key=int)
        for i in range(0, len(ids), 500):
            subprocess.run(["scancel", *ids[i : i + 500]], check=False, env=self.env(), capture_output=True, timeout=60)
        self.jobs.clear()

    def held_jobs(self, count: int) -> list[str]:
        """``count`` real jobs that never run: ``sbatch --hold --wrap true``."""
        cmd = [
            "sbatch",
            "--parsable",
            "--hold",
            "--job-name=hpctf-bench-held",
            f"--chdir={self.scratch}",
            "--output=/dev/null",
            "--wrap",
            "true",
        ]
        return [self.track(job_id(run(cmd, self.env())[1].stdout)) for _ in range(count)]


def job_id(sbatch_output: str) -> str:
    value = sbatch_output.strip().split(";")[0]
    if not value.isdigit():
        raise BenchError(f"sbatch printed no job id: {sbatch_output!r}")
    return value


def slurm_problem(env: dict[str, str]) -> str | None:
    """None if the Slurm client commands answer, else why not."""
    if shutil.which("sbatch", path=env.get("PATH")) is None:
        return "sbatch is not on PATH"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%D %t"], check=False, env=env, capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 15 s (slurmctld down? SLURM_CONF set?)"
    if done.returncode != 0:
        return f"sinfo failed: {done.stderr.strip()}"
    return None


def wait_for_job(ctx: Context, job: str, timeout: float, poll: float = 0.25) -> str:
    """Poll until the job has ended; its final state.  Jobs that measure something
    CPU-bound should poll less often (``poll``), so squeue does not compete with them."""
    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        cmd = ["squeue", "-h", "--states=all", "-j", job, "-o", "%T"]
        out = subprocess.run(cmd, check=False, env=ctx.env(), capture_output=True, text=True, timeout=30).stdout.strip()
        state = out or "GONE"  # past MinJobAge squeue forgets it
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return state
        time.sleep(poll)
    raise BenchError(f"job {job} still {state} after {timeout:.0f}s (is the cluster busy?)")
