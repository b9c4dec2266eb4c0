"""A stand-in for ``srun`` on a machine without Slurm, for hpctf's local target.

The local target runs the *same* rendered job script as Slurm would, with this module on
``PATH`` as ``srun`` (a shim that runs ``python -m hpctf.job.local_srun``).  It
understands the flags hpctf's templates use and gives every task the environment ``srun``
would (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_STEP_NODELIST``,
``SLURM_STEP_TASKS_PER_NODE`` ...), so ``hpctf.runtime`` derives ranks, GPUs and
``TF_CONFIG`` exactly as on a cluster:

- ``--mpi=X`` (Horovod): Slurm's PMIx plugin is not here, so Open MPI's own ``mpirun``
  starts the ranks on this machine and wires them together;
- otherwise the tasks are started as child processes;
- ``--kill-on-bad-exit=1``: when a task fails, the others are stopped and the step ends
  with that task's exit code (srun itself would report 143 for the killed step).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from .args import parse_command_line
from .logs import expand_pattern, redirect_output
from .process import Child, forward_signals, stop_all
from .taskenv import job_id

LOCAL_NODE = "localhost"
STOP_GRACE_S = 5.0
NAME = "srun (hpctf local)"


def parse(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """srun's ``--flag=value`` options up to the command (``kill_on_bad_exit``: "1"); the command."""
    return parse_command_line(argv, {}, loose=True)


def log_file(pattern: str | None, rank: int) -> str | None:
    """The file srun's ``--output``/``--error`` pattern names for one task; None: none given."""
    return expand_pattern(pattern, job_id(os.environ), rank) if pattern else None


def task_env(rank: int, ntasks: int, step: int) -> dict[str, str]:
    return {
        **os.environ,
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_NODEID": "0",
        "SLURM_STEP_ID": str(step),
        "SLURM_STEP_NUM_TASKS": str(ntasks),
        "SLURM_STEP_NUM_NODES": "1",
        "SLURM_STEP_NODELIST": LOCAL_NODE,
        "SLURM_STEP_TASKS_PER_NODE": str(ntasks),
        "SLURMD_NODENAME": LOCAL_NODE,
    }


def next_step_id() -> int:
    """Step ids count up within a job, as Slurm's do (a counter file in the log folder)."""
    folder = os.environ.get("HPCTF_LOG_DIR", ".")
    path = os.path.join(folder, f".{job_id(os.environ)}.steps")
    try:
        with open(path) as f:
            step = int(f.read() or 0)
    except (OSError, ValueError):
        step = 0
    with open(path, "w") as f:
        f.write(str(step + 1))
    return step


def run_tasks(command: list[str], ntasks: int, options: dict[str, str]) -> int:
    step = next_step_id()
    kill_on_bad_exit = options.get("kill_on_bad_exit", "0") not in ("0", "")
    children = [
        Child(
            command,
            env=task_env(rank, ntasks, step),
            stdout=log_file(options.get("output"), rank),
            stderr=log_file(options.get("error"), rank),
        )
        for rank in range(ntasks)
    ]
    forward_signals(children)
    while any(child.poll() is None for child in children):
        failed = [c.returncode for c in children if c.returncode not in (None, 0)]
        if failed and kill_on_bad_exit:
            print(f"{NAME}: a task exited with {failed[0]}; stopping the others", file=sys.stderr)
            stop_all(children, STOP_GRACE_S)
            return failed[0]
        time.sleep(0.05)
    return max((child.wait() for child in children), default=0)


def run_mpi(command: list[str], ntasks: int, options: dict[str, str]) -> int:
    """Open MPI's mpirun on this machine; each rank redirects its own output (see below)."""
    here = [sys.executable, "-m", "hpctf.job.local_srun", "--as-rank"]
    for stream in ("output", "error"):
        if options.get(stream):
            here.append(f"--{stream}={options[stream]}")
    mpirun = ["mpirun", "-np", str(ntasks), "--bind-to", "none"]
    process = Child([*mpirun, *here, "--", *command])

    # As srun does: signals for the step go to mpirun, which passes SIGUSR1/SIGUSR2 to the
    # ranks (a requeue job's checkpoint request) and stops them on SIGTERM/SIGINT.
    forward_signals([process])
    return process.wait()


def exec_as_rank(command: list[str], options: dict[str, str]) -> int:
    """Inside mpirun: this rank's log files, then the command itself (exec)."""
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    redirect_output(log_file(options.get("output"), rank), log_file(options.get("error"), rank))
    os.execvp(command[0], command)
    return 127  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    options, command = parse(sys.argv[1:] if argv is None else argv)
    if not command:
        print(f"{NAME}: no command given", file=sys.stderr)
        return 2
    if "as_rank" in options:
        return exec_as_rank(command, options)
    ntasks = int(options.get("ntasks") or options.get("n") or os.environ.get("SLURM_NTASKS", "1"))
    if options.get("mpi", "none") != "none":
        return run_mpi(command, ntasks, options)
    return run_tasks(command, ntasks, options)


if __name__ == "__main__":
    sys.exit(main())
