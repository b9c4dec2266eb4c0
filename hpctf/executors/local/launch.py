"""The local target: the same job script, run on this machine instead of by Slurm.

Starting a run lives here; following one (:class:`~hpctf.executors.local.handle.LocalRun`) in
:mod:`hpctf.executors.local.handle`.

For laptops, login-node debugging and trying hpctf without a cluster.  The rendered
sbatch script runs under ``bash`` in its own session, with the environment Slurm would
give a one-node allocation (``SLURM_JOB_ID``, ``SLURM_NTASKS``, ...) and
:mod:`hpctf.job.local_srun` on ``PATH`` as ``srun``; ``#SBATCH`` lines are comments to bash.
A sweep's job array is run by a supervisor in that session (:mod:`hpctf.executors.local.array`),
which starts the script once per element.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from ...errors import HpctfError
from ...private import JOB_UMASK, make_folder, open_private, write_file
from ...runpaths import log_file

PID_FILE = "local.pid"
CANCELLED_FILE = "local.cancelled"  # written by LocalRun.cancel before it signals the session


def new_job_id() -> str:
    return "L" + secrets.token_hex(3)


def free_port_base(count: int, start: int = 20000, stop: int = 60000) -> int:
    """The first base port with ``count`` consecutive free ports on this machine."""
    for base in range(start, stop, max(count, 1)):
        if all(port_free(base + i) for i in range(count)):
            return base
    raise HpctfError(f"no {count} consecutive free ports between {start} and {stop}")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def job_environment(
    job_id: str, name: str, ntasks: int, run_dir: Path, gpus: list[str] | None = None
) -> dict[str, str]:
    """What Slurm's batch step would see in a one-node allocation, plus the srun stand-in;
    ``gpus``: the devices the run was given (:mod:`.gpus`), as Slurm sets them."""
    from . import LocalExecutor

    shim_dir = run_dir / ".bin"
    make_folder(shim_dir)
    write_file(shim_dir / "srun", f'#!/bin/sh\nexec {_sh(sys.executable)} -m hpctf.job.local_srun "$@"\n', 0o700)
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
        "HPCTF_TARGET": LocalExecutor.name,
        # A laptop has fewer cores than a job has ranks: let Open MPI place more ranks
        # than cores (4.x and 5.x spell it differently).
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
        # SLURM_JOB_ID makes Open MPI look for a Slurm allocation and launch through srun:
        # use this machine instead.
        "OMPI_MCA_ras": "^slurm",
        "OMPI_MCA_plm": "^slurm",
        "PRTE_MCA_ras": "^slurm",
        "PRTE_MCA_plm": "^slurm",
    }
    if gpus:
        env.update(
            CUDA_VISIBLE_DEVICES=",".join(gpus), SLURM_JOB_GPUS=",".join(gpus), SLURM_GPUS_ON_NODE=str(len(gpus))
        )
    if os.geteuid() == 0:  # Open MPI refuses root unless told twice
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def _sh(word: str) -> str:
    import shlex

    return shlex.quote(word)


def start(
    script: Path,
    run_dir: Path,
    log_dir: Path,
    job_id: str,
    name: str,
    ntasks: int,
    gpus: list[str] | None = None,
    umask: int = JOB_UMASK,
) -> int:
    """Start the job script detached, in a session of its own; its process id. It gets
    this process's environment (secret_environment_variables too: never a file) and
    ``umask``."""
    out, err = log_file(log_dir, job_id, 0, "out"), log_file(log_dir, job_id, 0, "err")
    env = job_environment(job_id, name, ntasks, run_dir, gpus)
    return _detach(["bash", str(script)], run_dir, env, out, err, umask)


def start_array(
    script: Path,
    run_dir: Path,
    log_dir: Path,
    job_id: str,
    name: str,
    ntasks: int,
    *,
    trials: int,
    parallel: int | None,
    ports: int = 0,
    gpus: list[str] | None = None,
    umask: int = JOB_UMASK,
) -> int:
    """Start a job array's supervisor (:mod:`hpctf.executors.local.array`) detached, in a
    session of its own, which runs the script once per element; its process id. Its own
    account of the elements goes to ``<job>_array.log``."""
    command = [sys.executable, "-m", "hpctf.executors.local.array", str(script), "--job-id", job_id]
    command += ["--log-dir", str(log_dir), "--trials", str(trials), "--ports", str(ports)]
    if parallel is not None:
        command += ["--parallel", str(parallel)]
    log = Path(log_dir) / f"{job_id}_array.log"
    return _detach(command, run_dir, job_environment(job_id, name, ntasks, run_dir, gpus), log, log, umask)


def _detach(
    command: list[str], run_dir: Path, env: dict[str, str], out_path: Path, err_path: Path, umask: int = JOB_UMASK
) -> int:
    mode = 0o666 & ~umask
    with open_private(out_path, mode=mode) as out, open_private(err_path, mode=mode) as err:
        process = subprocess.Popen(
            command,
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            umask=umask,
        )
    write_file(run_dir / PID_FILE, f"{process.pid}\n")
    return process.pid
