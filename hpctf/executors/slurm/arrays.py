"""Job arrays (sweeps) seen as one job: the array's state from its elements' states.

``sacct -j 1234`` answers for an array with one line per element that has started
(``1234_0``, ``1234_1`` ...) and one line for the elements still waiting, as a range
(``1234_[5-39%4]``, which submitit's reader expands). Only for a moment (right after the
submit, or a cancel of waiting elements) is there a line for ``1234`` itself, which
stands for the elements not split off yet (:class:`~.watch.ClusterWatcher`). So one
scheduler call per refresh still tells every element's state, whatever the size of the
array, and the array's own state is made from them here.
"""

from __future__ import annotations

from ...states import JobState


def element_index(job_id: str, array_id: str) -> int | None:
    """3 for ``1234_3`` of array ``1234``; None for anything else."""
    prefix, sep, index = job_id.partition("_")
    return int(index) if sep and prefix == array_id and index.isdigit() else None


def elements(info: dict[str, dict[str, str]], array_id: str) -> dict[int, dict[str, str]]:
    """The scheduler's fields of every element of ``array_id`` found in ``info``, by index."""
    found = {}
    for job_id, fields in info.items():
        index = element_index(job_id, array_id)
        if index is not None:
            found[index] = fields
    return found


def array_fields(members: dict[int, dict[str, str]], size: int | None = None) -> dict[str, str] | None:
    """The array's own fields (State, ExitCode, Start, End, NodeList) from its elements';
    None when there are none. ``size``: elements the array has (those not listed are
    taken as pending).

    - running while any element runs, or some have ended and others wait;
    - pending while every element waits;
    - once all have ended: CANCELLED if any was cancelled; COMPLETED if any completed
      (exit code 0 when all did, else 1: some trials failed); else the first element's
      failure (FAILED, TIMEOUT, OUT_OF_MEMORY ...).
    """
    if not members:
        return None
    states = {index: JobState.from_slurm(fields.get("State")) for index, fields in members.items()}
    missing = max(0, (size or 0) - len(members))
    unfinished = missing > 0 or any(not s.finished for s in states.values())
    started = any(s is not JobState.PENDING for s in states.values())
    starts = sorted(f["Start"] for f in members.values() if _known(f.get("Start")))
    ends = sorted(f["End"] for f in members.values() if _known(f.get("End")))
    out = {"NodeList": "", "Start": starts[0] if starts else "Unknown", "End": "Unknown", "ExitCode": "0:0"}
    if unfinished:
        out["State"] = (JobState.RUNNING if started else JobState.PENDING).value
        return out
    out["End"] = ends[-1] if ends else "Unknown"
    ordered = [states[i] for i in sorted(states)]
    if JobState.CANCELLED in ordered:
        out["State"] = JobState.CANCELLED.value
    elif JobState.COMPLETED in ordered:
        out["State"] = JobState.COMPLETED.value
        out["ExitCode"] = "0:0" if all(s is JobState.COMPLETED for s in ordered) else "1:0"
    else:
        out["State"] = next(s for s in ordered if s is not JobState.COMPLETED).value
        out["ExitCode"] = "1:0"
    return out


def _known(value: str | None) -> bool:
    return bool(value) and value not in ("Unknown", "None")
