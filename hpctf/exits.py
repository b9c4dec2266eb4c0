"""How a run ended: the files a job leaves in its log folder, read the same way for
Slurm and local runs.

- ``<job>_exitcode``: the batch script's exit status, written by its EXIT trap;
- ``<job>_<task>_failed``: a task's own exit code, written by ``hpctf.runtime`` when the
  task fails. When one task fails, ``srun --kill-on-bad-exit`` stops the rest and exits
  143, and ``mpirun`` exits 1: the first marker tells which task failed and how;
- ``<job>_restarts``: with requeue=True, the attempt's ``SLURM_RESTART_COUNT`` (0 first);
- ``<job>_node_failure``: the nodes Slurm declared dead (``NODE_FAIL``), with Slurm's
  reason, written by the first refresh that sees the failure (the node may come back,
  and its reason with it, before anyone asks);
- ``<job>_requeues``: one JSON line per requeue after a node failure (the attempt it
  started, the dead nodes with Slurm's reason), written the same way.

:class:`ExitCodeResults` gives the run handles submitit's result API on top of these.
"""

from __future__ import annotations

import json
from datetime import datetime
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


class ExitCodeResults:
    """submitit's result API for a handle of an hpctf run (SlurmRun, LocalRun): the run is
    a script, not a pickled function, so there is no result pickle to read. ``result()``
    is the run's exit code, ``results()`` that code once per task, and ``exception()``
    None for a run that COMPLETED with exit code 0, else a ``FailedJobError``."""

    def result(self) -> int | None:
        """Wait for the run to end; its exit code (None if the scheduler lost track of it)."""
        self.wait()
        return self.exit_code

    def results(self) -> list[int | None]:
        return [self.result()] * self.num_tasks

    def exception(self):
        """Wait; None on success, else a FailedJobError that says how the run ended, which
        task failed first and where that task's log is."""
        from submitit.core.utils import FailedJobError

        code = self.result()
        state = str(self.state)
        if state == "COMPLETED" and code == 0:
            return None
        folder = Path(self.paths.folder)
        failed = first_failed_task(folder, self.job_id)
        task = failed[0] if failed else 0
        detail = f"; task {task} failed first, with exit code {failed[1]}" if failed else ""
        how = f"with exit code {code}" if code is not None else "without an exit code of its own"
        return FailedJobError(
            f"job {self.job_id} ended {state} {how}{detail}; its log: "
            f"{folder / f'{self.job_id}_{task}_log.err'} (job.task({task}).stderr())"
        )


def job_restarts(log_dir: str | Path, job_id: str) -> int | None:
    """How often the job was requeued, as its latest attempt saw it (``SLURM_RESTART_COUNT``
    in ``<job>_restarts``, written by jobs with requeue=True); None without the file."""
    return _read_int(Path(log_dir) / f"{job_id}_restarts")


# Ends Slurm decided, not the job: the time limit, a dead node, preemption, scancel, the
# memory limit, a failed boot, a passed deadline. Slurm's ExitCode for them is often 0:0
# (TIMEOUT on 22.05 and 24.11 when the tasks were killed before the script's trap ran;
# a job cancelled while queued), which says nothing about the program: hpctf reports no
# exit code then (None, null in JSON) and says why the job ended instead. A non-zero code
# is kept (143: the script ended on Slurm's SIGTERM), it is what the script really did.
SCHEDULER_ENDS = frozenset(
    {"TIMEOUT", "NODE_FAIL", "PREEMPTED", "CANCELLED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "LOST"}
)


def reported_exit_code(state: str, code: int | None) -> int | None:
    """``code``, except 0 for a job that ended other than COMPLETED: 0 is reported only
    for a job that completed (:data:`SCHEDULER_ENDS` says why the others get None)."""
    return None if code == 0 and str(state) in SCHEDULER_ENDS | {"FAILED"} else code


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


def slurm_time(text: str | None) -> float | None:
    """sacct's/squeue's ISO time (``2026-12-03T10:57:37``) in epoch seconds; None for
    ``Unknown``, ``N/A``, ``None``."""
    if not text or not text[:1].isdigit():
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def node_failure_file(log_dir: str | Path, job_id: str) -> Path:
    return Path(log_dir) / f"{job_id}_node_failure"


def record_node_failure(log_dir: str | Path, job_id: str, nodes: list[tuple[str, str]] | None) -> None:
    """Keep ``[(node, reason)]``; None: Slurm could not be asked (``sinfo`` failed)."""
    if nodes is None:
        data: dict = {"nodes": [], "unknown": "sinfo did not answer when the run ended"}
    else:
        data = {"nodes": nodes, "unknown": None if nodes else "the nodes were back in service before hpctf asked"}
    from .private import write_file

    try:
        write_file(node_failure_file(log_dir, job_id), json.dumps(data) + "\n")
    except OSError:
        pass  # a log folder that is gone or read-only: nothing to keep it in


def failed_nodes(log_dir: str | Path, job_id: str) -> dict | None:
    """``{"nodes": [[node, reason], ...], "unknown": why none is named, or None}`` as
    recorded when the run ended NODE_FAIL; None if nothing was recorded."""
    try:
        return json.loads(node_failure_file(log_dir, job_id).read_text())
    except (OSError, ValueError):
        return None


def requeues_file(log_dir: str | Path, job_id: str) -> Path:
    return Path(log_dir) / f"{job_id}_requeues"


def requeues(log_dir: str | Path, job_id: str) -> dict[int, dict]:
    """``{attempt: {"attempt": 2, "after": "NODE_FAIL", "nodes": [[node, reason]],
    "unknown": why none is named, or None}}``: the requeues recorded for a job."""
    found = {}
    try:
        lines = requeues_file(log_dir, job_id).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            entry = json.loads(line)
            found[int(entry["attempt"])] = entry
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short
    return found


def record_requeue(log_dir: str | Path, job_id: str, attempt: int, nodes: list[tuple[str, str]] | None) -> None:
    """Keep that Slurm requeued the job after a node failure, starting ``attempt``, and
    the dead nodes (``None``: ``sinfo`` did not answer)."""
    if nodes is None:
        unknown: str | None = "sinfo did not answer when the requeue was seen"
    else:
        unknown = None if nodes else "the nodes were back in service before hpctf asked"
    entry = {"attempt": attempt, "after": "NODE_FAIL", "nodes": nodes or [], "unknown": unknown}
    from .private import open_private

    try:
        with open_private(requeues_file(log_dir, job_id)) as f:  # owner-only, as every file hpctf writes
            f.write((json.dumps(entry) + "\n").encode())
    except OSError:
        pass  # a log folder that is gone or read-only: nothing to keep it in
