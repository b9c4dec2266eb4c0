"""The local target: the same job script, run on this machine instead of by Slurm.

For laptops, login-node debugging and trying hpctf without a cluster.  The rendered
sbatch script runs under ``bash`` in its own session, with the environment Slurm would
give a one-node allocation (``SLURM_JOB_ID``, ``SLURM_NTASKS``, ...) and
:mod:`hpctf.localsrun` on ``PATH`` as ``srun``; ``#SBATCH`` lines are comments to bash.
The job's state lives in its run folder (the session id, the exit-status file the
script's trap writes, a cancel marker), so any process can follow or cancel it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from submitit.core import core

from .errors import HpctfError
from .exits import job_exit_code
from .states import JobState

PID_FILE = "local.pid"
CANCELLED_FILE = "local.cancelled"
STOP_GRACE_S = 10.0


def new_job_id() -> str:
    return "L" + secrets.token_hex(3)


def free_port_base(count: int, start: int = 20000, stop: int = 60000) -> int:
    """The first base port with ``count`` consecutive free ports on this machine."""
    for base in range(start, stop, max(count, 1)):
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise HpctfError(f"no {count} consecutive free ports between {start} and {stop}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def job_environment(job_id: str, name: str, ntasks: int, run_dir: Path) -> dict[str, str]:
    """What Slurm's batch step would see in a one-node allocation, plus the srun stand-in."""
    shim_dir = run_dir / ".bin"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / "srun"
    shim.write_text(f'#!/bin/sh\nexec {_sh(sys.executable)} -m hpctf.localsrun "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": name,
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_NNODES": "1",
        "SLURM_NTASKS": str(ntasks),
        "SLURM_TASKS_PER_NODE": str(ntasks),
        "SLURM_SUBMIT_DIR": os.getcwd(),
        "HPCTF_TARGET": "local",
        # A laptop has fewer cores than a job has ranks: let Open MPI place more ranks
        # than cores (4.x and 5.x spell it differently).
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
        # SLURM_JOB_ID makes Open MPI look for a Slurm allocation and launch through srun:
        # use this machine instead.
        "OMPI_MCA_ras": "^slurm", "OMPI_MCA_plm": "^slurm",
        "PRTE_MCA_ras": "^slurm", "PRTE_MCA_plm": "^slurm",
    }
    if os.geteuid() == 0:  # Open MPI refuses root unless told twice
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def _sh(word: str) -> str:
    import shlex

    return shlex.quote(word)


def start(script: Path, run_dir: Path, log_dir: Path, job_id: str, name: str, ntasks: int) -> int:
    """Start the job script detached, in a session of its own; its process id."""
    env = job_environment(job_id, name, ntasks, run_dir)
    with open(log_dir / f"{job_id}_0_log.out", "ab") as out, open(log_dir / f"{job_id}_0_log.err", "ab") as err:
        process = subprocess.Popen(
            ["bash", str(script)], cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True,
        )
    (run_dir / PID_FILE).write_text(f"{process.pid}\n")
    return process.pid


# ---------------------------------------------------------------------------------------
# Following a local run from any process
# ---------------------------------------------------------------------------------------


def session_members(sid: int) -> list[int]:
    """Every live process of session ``sid`` (the job script and all it started)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            members.append(int(entry))
    return members


class LocalRun(core.Job):
    """A submitit-style handle for a local run: state, wait, logs, cancel, exit code."""

    def _register_in_watcher(self) -> None:  # no scheduler to ask
        pass

    @property
    def run_dir(self) -> Path:
        return Path(self.paths.folder).parent

    @property
    def _sid(self) -> int | None:
        try:
            return int((self.run_dir / PID_FILE).read_text())
        except (OSError, ValueError):
            return None

    @property
    def exit_code(self) -> int | None:
        return job_exit_code(self.paths.folder, self.job_id)

    @property
    def state(self) -> JobState:  # type: ignore[override]
        cancelled = (self.run_dir / CANCELLED_FILE).exists()
        code = self.exit_code
        alive = self._sid is not None and bool(session_members(self._sid))
        if alive and (code is None or cancelled):
            return JobState.RUNNING
        if cancelled:
            return JobState.CANCELLED
        if code is None:
            return JobState.FAILED  # killed without its trap running (kill -9, reboot)
        return JobState.COMPLETED if code == 0 else JobState.FAILED

    def done(self, force_check: bool = False) -> bool:
        return self.state.finished

    def wait(self) -> None:
        while not self.done():
            time.sleep(0.2)

    def result(self) -> int | None:  # type: ignore[override]
        self.wait()
        return self.exit_code

    def results(self) -> list:  # type: ignore[override]
        return [self.result()]

    def cancel(self, check: bool = True) -> None:
        """Stop every process of the run: SIGTERM to the session, SIGKILL after a grace."""
        sid = self._sid
        (self.run_dir / CANCELLED_FILE).write_text(f"{time.time()}\n")
        if sid is None:
            return
        for signum, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            for pid in session_members(sid):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while session_members(sid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not session_members(sid):
                return

    def __repr__(self) -> str:
        return f"LocalRun<job_id={self.job_id}, folder={self.paths.folder}>"


def sbatch_available() -> bool:
    return shutil.which("sbatch") is not None
