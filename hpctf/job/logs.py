"""Per-task log files: Slurm's file-name patterns, and a task's output sent to its files.

srun writes one file per task itself (``--output=DIR/%j_%t_log.out``); under Open MPI's
``mpirun``, which would mix every rank into the batch step's output, each rank sends its
own stdout/stderr to the file srun would have named (``hpctf.runtime --task-logs``, and
the local ``srun`` stand-in's ranks).
"""

from __future__ import annotations

import os

LOG_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
# submitit's names, which srun's --output pattern gives hpctf's tasks (hpctf.render).
TASK_LOG_PATTERN = "%j_%t_log.{stream}"


def expand_pattern(pattern: str, job_id: str, rank: int) -> str:
    """Slurm's file-name pattern for one task: %j job id, %t task id, %A and %a a job
    array's id and element (a sweep's), %% a percent sign."""
    fields = {"j": job_id, "t": str(rank), "%": "%"}
    fields.update(A=os.environ.get("SLURM_ARRAY_JOB_ID", job_id), a=os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            out.append(fields.get(pattern[i + 1], pattern[i : i + 2]))
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def task_log_files(folder: str, job_id: str, rank: int) -> tuple[str, str]:
    """The task's stdout and stderr files in ``folder``, named as srun names hpctf's."""
    return tuple(  # type: ignore[return-value]
        os.path.join(folder, expand_pattern(TASK_LOG_PATTERN.format(stream=s), job_id, rank)) for s in ("out", "err")
    )


def redirect_output(stdout: str | None, stderr: str | None) -> None:
    """Append this process's stdout/stderr (file descriptors 1 and 2) to these files."""
    for fd, path in ((1, stdout), (2, stderr)):
        if path:
            target = os.open(path, LOG_FILE_FLAGS, 0o644)
            os.dup2(target, fd)
            os.close(target)
