"""What the checks share: reading a job's logs for known causes, and summing up problems."""

from __future__ import annotations

import re

from .model import JobResult, Shape

UNKNOWN_PLUGIN = re.compile(
    r"Invalid MPI type|Couldn't find the specified plugin name for mpi|cannot find mpi plugin", re.I
)
SAME_ENVIRONMENT = "use one environment on a file system every node mounts (--python)"


def log_hints(shape: Shape, text: str) -> list[str]:
    """What a job's logs say went wrong, as things to change."""
    hints: list[str] = []
    if re.search(r"No module named '?hpctf", text):
        hints.append(
            f"the job's Python ({shape.python}) cannot import hpctf, and every task starts through "
            "`python -m hpctf.runtime`: `pip install hpctf` into that environment, or pass --python "
            "with one that has it"
        )
    if UNKNOWN_PLUGIN.search(text):
        hints.append(f"srun has no MPI plugin '{shape.pmi}': pass --pmi with one `srun --mpi=list` shows")
    if re.search(r"mpirun: (command )?not found|mpirun: No such file", text):
        hints.append(
            "mpirun is not on PATH in the job: load Open MPI in the job (--setup 'module load openmpi' "
            "or the target's modules), or use --launcher srun"
        )
    python = re.escape(shape.python)
    if re.search(
        rf"{python}: (No such file or directory|command not found)|execve\(\): {python}|cannot run '?{python}", text
    ):
        hints.append(
            f"--python {shape.python} does not exist on the compute nodes: pass an interpreter on a "
            "file system they mount"
        )
    if re.search(r"PMIX_ERROR|PMIx_Init|pmix.*(failed|error)|OPAL ERROR", text, re.I):
        hints.append(
            "Open MPI could not reach Slurm's PMIx (Open MPI built without PMIx, or a PMIx version "
            "mismatch): ask your admin which --pmi to use (`srun --mpi=list`), or use --launcher mpirun"
        )
    if "Address already in use" in text:
        hints.append("a port is taken: choose another --port-base")
    for line in text.splitlines():
        if line.startswith("hpctf.runtime:") and line not in hints:
            hints.append(line)
    return hints


def first_of(problems: list[str]) -> str:
    """A failed check's one-line summary: its first problem, and how many more."""
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def tail(result: JobResult, lines: int = 8) -> list[str]:
    """The last non-blank lines of each of the job's logs, as a check's details."""
    out: list[str] = []
    for name, text in result.logs.items():
        body = [line for line in text.strip().splitlines() if line.strip()][-lines:]
        if body:
            out.append(f"{name}:")
            out += [f"  {line}" for line in body]
    return out


def missing_summary(result: JobResult) -> str:
    """How the job ended, for a check whose ranks did not all report."""
    if result.error:
        return result.error
    if result.timed_out:
        return f"job {result.job_id} did not finish in time (state {result.state})"
    return f"job {result.job_id} ended {result.state} (exit code {result.exit_code})"
