"""Job states: every word Slurm (sacct, squeue, scontrol) uses, mapped in one place."""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    """A job's state. A ``str`` subclass, so ``job.state == "COMPLETED"`` works as in submitit."""

    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    REQUEUED = "REQUEUED"
    RESIZING = "RESIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    REVOKED = "REVOKED"
    # hpctf's own: neither the scheduler nor the job's exit-status file knows the job any
    # more (no accounting, purged from slurmctld, killed before its trap ran). Finished.
    LOST = "LOST"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_slurm(cls, word: str | None) -> JobState:
        """``"CANCELLED by 0"``, ``"CA"``, ``"OUT_OF_ME+"`` ... -> JobState."""
        if not word:
            return cls.UNKNOWN
        known = _BY_WORD.get(word)
        if known is not None:
            return known
        head = word.strip().split()[0].upper().rstrip("+")
        head = _SHORT.get(head, head)
        for state in cls:
            if state.value == head or (len(head) >= 8 and state.value.startswith(head)):
                return state
        return cls.UNKNOWN

    @property
    def finished(self) -> bool:
        """True once the job will not run again (PREEMPTED and REQUEUED jobs come back)."""
        return self.value not in UNFINISHED


# Not finished: the job is queued, running, or will be queued again. PREEMPTED counts as
# unfinished because with requeue Slurm puts the job back in the queue (submitit#1770).
UNFINISHED = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "PREEMPTED", "UNKNOWN"}
)

# squeue's compact codes (squeue -o %t).
_SHORT = {
    "PD": "PENDING",
    "CF": "CONFIGURING",
    "R": "RUNNING",
    "CG": "COMPLETING",
    "S": "SUSPENDED",
    "RQ": "REQUEUED",
    "RS": "RESIZING",
    "CD": "COMPLETED",
    "F": "FAILED",
    "CA": "CANCELLED",
    "TO": "TIMEOUT",
    "PR": "PREEMPTED",
    "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY",
    "BF": "BOOT_FAIL",
    "DL": "DEADLINE",
    "RV": "REVOKED",
}

# Exact words, looked up before any parsing (ls over 10,000 runs maps 10,000 of them).
_BY_WORD = {state.value: state for state in JobState}
