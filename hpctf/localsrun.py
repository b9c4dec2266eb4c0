"""A stand-in for ``srun`` on a machine without Slurm, for hpctf's local target.

The local target runs the *same* rendered job script as Slurm would, with this module on
``PATH`` as ``srun``.  It understands the flags hpctf's templates use and gives every
task the environment ``srun`` would (``SLURM_PROCID``, ``SLURM_LOCALID``,
``SLURM_STEP_NODELIST``, ``SLURM_STEP_TASKS_PER_NODE`` ...), so ``hpctf.runtime`` derives
ranks, GPUs and ``TF_CONFIG`` exactly as on a cluster:

- ``--mpi=X`` (Horovod): Slurm's PMIx plugin is not here, so Open MPI's own ``mpirun``
  starts the ranks on this machine and wires them together;
- otherwise the tasks are started as child processes;
- ``--kill-on-bad-exit=1``: when a task fails, the others are stopped and the step ends
  with that task's exit code (srun itself would report 143 for the killed step).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

LOCAL_NODE = "localhost"
STOP_GRACE_S = 5.0


def parse(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """srun's ``--flag=value`` options up to the command; the command."""
    options: dict[str, str] = {}
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "--":
            break
        name, sep, value = flag.lstrip("-").partition("=")
        options[name] = value if sep else "1"
    return options, args


def log_file(pattern: str, rank: int) -> str:
    """Slurm's file-name pattern for one task: %j job id, %t task id, %% a percent sign."""
    job = os.environ.get("SLURM_JOB_ID", "0")
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            out.append({"j": job, "t": str(rank), "%": "%"}.get(pattern[i + 1], pattern[i : i + 2]))
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


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
    path = os.path.join(folder, f".{os.environ.get('SLURM_JOB_ID', '0')}.steps")
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
    kill_on_bad_exit = options.get("kill-on-bad-exit", "0") not in ("0", "")
    children: list[subprocess.Popen] = []
    for rank in range(ntasks):
        out = _open(options.get("output"), rank, sys.stdout)
        err = _open(options.get("error"), rank, sys.stderr)
        children.append(subprocess.Popen(command, env=task_env(rank, ntasks, step), stdout=out, stderr=err))

    forward_signals(children)

    first_failure: int | None = None
    while any(child.poll() is None for child in children):
        failed = [c.returncode for c in children if c.returncode not in (None, 0)]
        if failed and kill_on_bad_exit:
            first_failure = failed[0]
            print(f"srun (hpctf local): a task exited with {first_failure}; stopping the others", file=sys.stderr)
            stop(children)
            break
        time.sleep(0.05)
    codes = [child.wait() for child in children]
    if first_failure is not None:
        return _exit_status(first_failure)
    return max((_exit_status(c) for c in codes), default=0)


def stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_mpi(command: list[str], ntasks: int, options: dict[str, str]) -> int:
    """Open MPI's mpirun on this machine; each rank redirects its own output (see below)."""
    here = [sys.executable, "-m", "hpctf.localsrun", "--as-rank"]
    for stream in ("output", "error"):
        if options.get(stream):
            here.append(f"--{stream}={options[stream]}")
    mpirun = ["mpirun", "-np", str(ntasks), "--bind-to", "none"]
    process = subprocess.Popen([*mpirun, *here, "--", *command])

    # As srun does: signals for the step go to mpirun, which passes SIGUSR1/SIGUSR2 to the
    # ranks (a requeue job's checkpoint request) and stops them on SIGTERM/SIGINT.
    forward_signals([process])
    return process.wait()


def forward_signals(processes: list[subprocess.Popen]) -> None:
    """Pass the signals srun passes on (stop, interrupt, USR1/USR2) to ``processes``."""

    def forward(signum, _frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, forward)


def exec_as_rank(command: list[str], options: dict[str, str]) -> int:
    """Inside mpirun: this rank's log files, then the command itself (exec)."""
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    for fd, stream in ((1, "output"), (2, "error")):
        if options.get(stream):
            target = os.open(log_file(options[stream], rank), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
            os.close(target)
    os.execvp(command[0], command)
    return 127  # not reached


def _open(pattern: str | None, rank: int, default):
    if not pattern:
        return default
    return open(log_file(pattern, rank), "ab")


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N -> 128+N, as a shell says


def main(argv: Sequence[str] | None = None) -> int:
    options, command = parse(sys.argv[1:] if argv is None else argv)
    if not command:
        print("srun (hpctf local): no command given", file=sys.stderr)
        return 2
    if "as-rank" in options:
        return exec_as_rank(command, options)
    ntasks = int(options.get("ntasks") or options.get("n") or os.environ.get("SLURM_NTASKS", "1"))
    if options.get("mpi", "none") != "none":
        return run_mpi(command, ntasks, options)
    return run_tasks(command, ntasks, options)


if __name__ == "__main__":
    sys.exit(main())
