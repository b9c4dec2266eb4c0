"""Heterogeneous jobs (``#SBATCH hetjob``) seen as one job: its fields from its components'.

``sbatch`` prints one id for a heterogeneous job (``1234``), but neither ``sacct -j 1234``
nor ``squeue --jobs 1234`` has a line for it: they list its components, ``1234+0`` (the
one that runs the batch script) and ``1234+1`` ... (each also has an id of its own,
1234, 1235 ...: ``SLURM_JOB_ID_HET_GROUP_N``). ``scancel 1234`` ends every component
(``scancel 1235`` only component 1). The batch step's ``SLURM_JOB_ID`` is 1234, so the
job script's exit-status file is ``1234_exitcode``, as for any job. So the watcher
(:class:`~.watch.ClusterWatcher`) follows such a job under its own id, with no need to
know in advance that it is one.

For a few seconds after the start, sacct lists a line of the job's own id instead
(component 0's record, before the components are recorded: PENDING while its steps run;
for a job that ends that soon, its end). The components' lines win over it, and while
sacct ends a job known to be heterogeneous on that line alone, squeue's lines of its
components tell its state and every node (the line its exit code). A job whose first
refresh comes in that window, already ended, keeps that line: the right state and exit
code (Slurm gives every component the batch script's end), component 0's nodes only.
"""

from __future__ import annotations

from ...exits import parse_exit_code
from ...states import JobState


def het_job_id(job_id: str) -> str | None:
    """``1234`` for a component id ``1234+1``; None for anything else (steps included)."""
    job, sep, index = job_id.partition("+")
    return job if sep and job.isdigit() and index.isdigit() else None


def component_index(job_id: str, het_id: str) -> int | None:
    """1 for ``1234+1`` of het job ``1234``; None for anything else."""
    job, sep, index = job_id.partition("+")
    return int(index) if sep and job == het_id and index.isdigit() else None


def components(info: dict[str, dict[str, str]], het_id: str) -> dict[int, dict[str, str]]:
    """The scheduler's fields of every component of ``het_id`` found in ``info``, by index."""
    found = {}
    for job_id, fields in info.items():
        index = component_index(job_id, het_id)
        if index is not None:
            found[index] = fields
    return found


# Which component's end tells the job's, when they ended differently: a cause before its
# consequences (a node that failed, memory, the time limit before the failure they caused).
_CAUSES = (
    JobState.NODE_FAIL,
    JobState.BOOT_FAIL,
    JobState.OUT_OF_MEMORY,
    JobState.TIMEOUT,
    JobState.DEADLINE,
    JobState.PREEMPTED,
    JobState.CANCELLED,
)


def het_fields(members: dict[int, dict[str, str]]) -> dict[str, str] | None:
    """The job's own fields (State, ExitCode, NodeList, Start, End, Restarts) from its
    components'; None when there are none.

    - State: while any component has not ended, the first such component's (by index);
      once all have ended, a component's failure wins (NODE_FAIL, OUT_OF_MEMORY, TIMEOUT,
      CANCELLED ... before FAILED; the lower index on a tie), else COMPLETED;
    - ExitCode: component 0's (its batch script's), unless that is 0 and another failed
      with a code of its own;
    - NodeList: every component's nodes, joined by commas; Start the earliest, End the
      latest (Unknown while any component runs); Restarts the most any component had.
    """
    if not members:
        return None
    order = sorted(members)
    first = members[order[0]]
    states = {index: JobState.from_slurm(members[index].get("State")) for index in order}
    out = {"State": first.get("State", "")}
    if "ExitCode" in first:  # sacct's; squeue's lines have none
        out["ExitCode"] = first["ExitCode"]
    waiting = [index for index in order if not states[index].finished]
    if waiting:
        out["State"] = members[waiting[0]].get("State", "")
    else:
        failed = [index for index in order if states[index] is not JobState.COMPLETED]
        if failed:
            rank = {state: n for n, state in enumerate(_CAUSES)}
            worst = min(failed, key=lambda index: (rank.get(states[index], len(_CAUSES)), index))
            out["State"] = members[worst].get("State", "")
            if parse_exit_code(out.get("ExitCode")) in (None, 0):
                coded = [
                    index
                    for index in [worst, *failed]
                    if parse_exit_code(members[index].get("ExitCode")) not in (None, 0)
                ]
                if coded:
                    out["ExitCode"] = members[coded[0]]["ExitCode"]
    nodes = [members[index].get("NodeList", "") for index in order]
    placed = [n for n in nodes if n and n not in ("None assigned", "(null)")]
    out["NodeList"] = ",".join(placed) if placed else nodes[0]
    starts = sorted(f["Start"] for f in members.values() if _known(f.get("Start")))
    ends = sorted(f["End"] for f in members.values() if _known(f.get("End")))
    if "Start" in first or starts:
        out["Start"] = starts[0] if starts else "Unknown"
    if "End" in first or ends:
        out["End"] = ends[-1] if ends and not waiting else "Unknown"
    restarts = [int(f["Restarts"]) for f in members.values() if f.get("Restarts", "").isdigit()]
    if restarts:
        out["Restarts"] = str(max(restarts))
    return out


def join_components(info: dict[str, dict[str, str]], ids: list[str]) -> list[str]:
    """Give each of ``ids`` whose components ``info`` lists its own entry, made from
    theirs (replacing any line of its own: an early one, from before they were recorded).
    The components' entries stay. Returns the ids that are heterogeneous jobs."""
    joined = []
    for job_id in ids:
        fields = het_fields(components(info, job_id))
        if fields is not None:
            info[job_id] = {"JobID": job_id, **fields}
            joined.append(job_id)
    return joined


def with_early_line(entry: dict[str, str] | None, line: dict[str, str]) -> dict[str, str]:
    """A het job's entry from squeue's components (``entry``; None or LOST when squeue
    did not tell), completed by sacct's early line for its own id (``line``): that line is
    component 0's record, so its exit code is the batch script's."""
    if entry is None or JobState.from_slurm(entry.get("State")) is JobState.LOST:
        return line
    return {**{k: v for k, v in line.items() if k in ("ExitCode", "Start", "End", "Restarts")}, **entry}


def _known(value: str | None) -> bool:
    return bool(value) and value not in ("Unknown", "None")
