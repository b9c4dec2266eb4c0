"""How a run ended: the files a job leaves in its log folder, read the same way for
Slurm and local runs.

- ``<job>_exitcode``: the batch script's exit status, written by its EXIT trap;
- ``<job>_<task>_failed``: a task's own exit code, written by ``hpctf.runtime`` when the
  task fails. When one task fails, ``srun --kill-on-bad-exit`` stops the rest and exits
  143, and ``mpirun`` exits 1: the first marker tells which task failed and how;
- ``<job>_restarts``: with requeue=True, the attempt's ``SLURM_RESTART_COUNT`` (0 first);
- ``<job>_node_failure``: the nodes Slurm declared dead (``NODE_FAIL``), with Slurm's
  reason, written by the first refresh that sees the failure (the node may come back,
  and its reason with it, before anyone asks).
"""

from __future__ import annotations

import json
from pathlib import Path


def exit_status_file(log_dir: str | Path, job_id: str) -> Path:
    return Path(log_dir) / f"{job_id}_exitcode"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def first_failed_task(log_dir: str | Path, job_id: str) -> tuple[int, int] | None:
    """(task id, exit code) of the task that failed first, if any did."""
    markers = []
    for path in Path(log_dir).glob(f"{job_id}_*_failed"):
        task = path.name[len(job_id) + 1 : -len("_failed")]
        code = _read_int(path)
        if task.isdigit() and code is not None:
            markers.append((path.stat().st_mtime, int(task), code))
    if not markers:
        return None
    _, task, code = min(markers)
    return task, code


def job_exit_code(log_dir: str | Path, job_id: str) -> int | None:
    """The run's exit code: a failed task's own code, else the batch script's status."""
    status = _read_int(exit_status_file(log_dir, job_id))
    if status:
        failed = first_failed_task(log_dir, job_id)
        if failed is not None:
            return failed[1]
    return status


def job_exception(job):
    """submitit's ``Job.exception()`` for an hpctf run that has ended: None when it
    COMPLETED with exit code 0, else a ``FailedJobError`` that says how it ended, which
    task failed first and where its log is. (hpctf jobs run scripts, not pickled
    functions: there is no result pickle for submitit to read.)"""
    from submitit.core.utils import FailedJobError

    state, code = str(job.state), job.exit_code
    if state == "COMPLETED" and code == 0:
        return None
    folder = Path(job.paths.folder)
    failed = first_failed_task(folder, job.job_id)
    task = failed[0] if failed else 0
    detail = f"; task {task} failed first, with exit code {failed[1]}" if failed else ""
    return FailedJobError(
        f"job {job.job_id} ended {state} with exit code {code}{detail}; its log: "
        f"{folder / f'{job.job_id}_{task}_log.err'} (job.task({task}).stderr())"
    )


def job_restarts(log_dir: str | Path, job_id: str) -> int | None:
    """How often the job was requeued, as its latest attempt saw it (``SLURM_RESTART_COUNT``
    in ``<job>_restarts``, written by jobs with requeue=True); None without the file."""
    return _read_int(Path(log_dir) / f"{job_id}_restarts")


def parse_exit_code(text: str | None) -> int | None:
    """sacct's ``3:0`` (code:signal) -> 3; ``0:15`` (killed by SIGTERM) -> 143."""
    if not text:
        return None
    code, _, sig = text.partition(":")
    try:
        code_i, sig_i = int(code), int(sig or 0)
    except ValueError:
        return None
    return code_i if code_i or not sig_i else 128 + sig_i


def node_failure_file(log_dir: str | Path, job_id: str) -> Path:
    return Path(log_dir) / f"{job_id}_node_failure"


def record_node_failure(log_dir: str | Path, job_id: str, nodes: list[tuple[str, str]] | None) -> None:
    """Keep ``[(node, reason)]``; None: Slurm could not be asked (``sinfo`` failed)."""
    if nodes is None:
        data: dict = {"nodes": [], "unknown": "sinfo did not answer when the run ended"}
    else:
        data = {"nodes": nodes, "unknown": None if nodes else "the nodes were back in service before hpctf asked"}
    try:
        node_failure_file(log_dir, job_id).write_text(json.dumps(data) + "\n")
    except OSError:
        pass  # a log folder that is gone or read-only: nothing to keep it in


def failed_nodes(log_dir: str | Path, job_id: str) -> dict | None:
    """``{"nodes": [[node, reason], ...], "unknown": why none is named, or None}`` as
    recorded when the run ended NODE_FAIL; None if nothing was recorded."""
    try:
        return json.loads(node_failure_file(log_dir, job_id).read_text())
    except (OSError, ValueError):
        return None
