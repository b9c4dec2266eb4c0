"""Tracking Slurm jobs with submitit: one scheduler call per refresh, with or without sacct.

submitit's ``SlurmInfoWatcher`` asks ``sacct`` about every watched job in one call.  Where
accounting is off, ``sacct`` fails, submitit only logs it and ``wait()`` never returns
(submitit#1720).  :class:`ClusterWatcher` then switches, for good, to one
``squeue --states=all`` call (jobs the controller still remembers) plus the exit-status
file every hpctf job script writes when it ends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import submitit
from submitit.slurm.slurm import SlurmInfoWatcher

from ...exits import ExitCodeResults, job_exit_code, job_restarts, parse_exit_code, reported_exit_code, slurm_time
from ...runfolder import RunFolder
from ...schedcall import answer, call
from ...states import JobState
from .arrays import array_fields, elements
from .cluster import flag, without_cluster_lines
from .hetjobs import components, het_job_id, join_components, with_early_line

SCHEDULER_TIMEOUT_S = 30  # sacct/squeue hang while slurmctld is down


class ClusterWatcher(SlurmInfoWatcher):
    """submitit's batched watcher, plus exit codes and a fallback without accounting."""

    def __init__(self, delay_s: int = 30, clusters: tuple[str, ...] = ()) -> None:
        super().__init__(delay_s=delay_s)
        self.clusters = list(clusters)  # ["--clusters", NAME]: jobs of another cluster (multi-cluster sites)
        self._folders: dict[str, Path] = {}
        self.arrays: dict[str, int] = {}  # job arrays (sweeps) -> their number of elements
        self.hets: set[str] = set()  # heterogeneous jobs: sacct and squeue list ID+0, ID+1 ...
        self.accounting: bool | None = None  # None: not known yet

    def watch(self, job_id: str, folder: Path, array_size: int | None = None) -> None:
        """Follow ``job_id``; ``array_size``: it is a job array of that many elements,
        followed as one job (:mod:`.arrays`) and element by element (``<id>_<index>``)."""
        self._folders[job_id] = Path(folder)
        if array_size is not None:
            self.arrays[job_id] = array_size
        self.register_job(job_id)

    def _unfinished(self) -> list[str]:
        return sorted(self._registered - self._finished)

    def _make_command(self) -> list[str] | None:
        ids = self._unfinished()
        if not ids:
            return None
        # --duplicates: a requeued job has one record per attempt, the earlier ones REQUEUED
        # (oldest first); the last one is the job's state, their number its attempts.
        return [
            "sacct",
            "-o",
            "JobID,State,ExitCode,NodeList,Start,End",
            "--parsable2",
            "--duplicates",
            *self.clusters,
            "-j",
            ",".join(ids),
        ]

    def update(self) -> None:
        """Refresh every unfinished job with one scheduler call (two on the refresh right
        after a submit: accounting lags sbatch by a second or more, and squeue is asked
        about the jobs sacct does not list yet)."""
        ids = self._unfinished()
        if not ids:
            return
        self._num_calls += 1
        info: dict[str, dict[str, str]] | None = None
        if self.accounting is not False:
            info = self._from_sacct(ids)
            if info is None:
                self.accounting = False  # the cluster has no accounting: stop asking
            else:
                early = {j: info.pop(j) for j in ids if self._early_end(info, j)}
                unlisted = [
                    job_id
                    for job_id in ids
                    if job_id not in info and not elements(info, job_id) and not self._in_watched_array(job_id)
                ]
                if unlisted:  # just submitted (PENDING), or forgotten by both (LOST)
                    info.update(self._from_squeue(unlisted) or {})
                for job_id, line in early.items():
                    info[job_id] = with_early_line(info.get(job_id), line)
                self._requeued_after_node_failure(info, [j for j in ids if j not in self.arrays and j not in self.hets])
        if info is None:
            info = self._from_squeue(ids)
        if info is not None:
            masters = {job_id: info.pop(job_id) for job_id in ids if job_id in self.arrays and job_id in info}
            self._info_dict.update(info)
            self._arrays_as_jobs(ids, masters)
        self._last_status_check = time.time()
        for job_id in ids:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _requeued_after_node_failure(self, info: dict[str, dict[str, str]], ids: list[str]) -> None:
        """sacct ends a job NODE_FAIL before Slurm has recorded its requeue (the PENDING
        record comes a moment later): for jobs sacct says ended so, squeue (one call) says
        whether the controller has queued them again. If it has, that is their state, one
        attempt more; if squeue does not answer, the refresh leaves them as they were."""
        failed = [j for j in ids if j in info and JobState.from_slurm(info[j].get("State")) is JobState.NODE_FAIL]
        if not failed:
            return
        out = _answer(
            ["squeue", "--noheader", "--states=all", "--format=%i|%T", *self.clusters, "--jobs", ",".join(failed)]
        )
        if out is not None:
            out = without_cluster_lines(out)
        if out is None:
            for job_id in failed:
                info.pop(job_id)  # not known to be over yet: asked again next time
            return
        queued = dict((line.split("|") + [""])[:2] for line in out.splitlines() if "|" in line)
        for job_id in failed:
            state = JobState.from_slurm(queued.get(job_id, "").strip())
            if state is not JobState.UNKNOWN and not state.finished:
                restarts = int(info[job_id].get("Restarts") or 0) + 1
                info[job_id] = {
                    **info[job_id],
                    "State": state.value,
                    "ExitCode": "",
                    "End": "",
                    "Restarts": str(restarts),
                    "RequeuedAfter": "NODE_FAIL",
                    "RequeuedNodes": info[job_id].get("NodeList", ""),
                }

    def _early_end(self, info: dict[str, dict[str, str]], job_id: str) -> bool:
        """sacct ends a het job on a line of its own id, component 0's record from before
        the components were recorded: squeue's lines of all of them are asked for, once."""
        line = info.get(job_id)
        return (
            job_id in self.hets
            and line is not None
            and not components(info, job_id)
            and JobState.from_slurm(line.get("State")).finished
        )

    def _in_watched_array(self, job_id: str) -> bool:
        """``237_4`` while array 237 is watched: its line is the array's to give (its own, a
        range, or the array's own id), not squeue's."""
        array, _, index = job_id.partition("_")
        return index.isdigit() and array in self.arrays

    def _arrays_as_jobs(self, ids: list[str], masters: dict[str, dict[str, str]]) -> None:
        """Each watched array's own entry, made from its elements'. sacct lists elements;
        a line for the array's own id stands for the elements it has not split off yet
        (right after a submit, or a cancel of waiting elements): they take its fields."""
        for job_id in ids:
            if job_id not in self.arrays:
                continue
            if job_id in masters:
                for index in range(self.arrays[job_id]):
                    element = f"{job_id}_{index}"
                    known = self._info_dict.get(element)
                    if known is None or known.get("FromArray") == "1":  # not listed on its own yet
                        self._info_dict[element] = {**masters[job_id], "JobID": element, "FromArray": "1"}
            fields = array_fields(elements(self._info_dict, job_id), self.arrays[job_id])
            if fields is not None:
                self._info_dict[job_id] = {"JobID": job_id, **fields}

    def _from_sacct(self, ids: list[str]) -> dict[str, dict[str, str]] | None:
        command = self._make_command()
        assert command is not None
        out = _answer(command)
        if out is None:
            return None
        self.accounting = True
        info = self.read_info(_ranges_first(out, header=True))
        self.hets.update(join_components(info, ids))  # heterogeneous jobs: sacct lists ID+0, ID+1 ...
        for job_id, attempts in count_attempts(out).items():
            if job_id in info:
                info[job_id] = {**info[job_id], "Restarts": str(attempts - 1)}
        for job_id, (state, nodes) in last_requeues(out).items():
            if job_id in info:
                info[job_id] = {**info[job_id], "RequeuedAfter": state, "RequeuedNodes": nodes}
        return info

    def _from_squeue(self, ids: list[str]) -> dict[str, dict[str, str]] | None:
        # --states=all lists finished jobs too, for as long as slurmctld keeps them
        # (MinJobAge, 300 s by default); after that only the exit-status file is left.
        command = ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N", *self.clusters, "--jobs", ",".join(ids)]
        try:
            out = call(command, SCHEDULER_TIMEOUT_S)
        except OSError:
            return None
        if out.failure:
            return None
        seen: dict[str, dict[str, str]] = {}
        for line in _ranges_first(without_cluster_lines(out.stdout)).splitlines():
            job_id, state, nodes = (line.split("|") + ["", ""])[:3]
            for one in expand_array_ids(job_id.strip()):  # an array's waiting elements: 7_[3-9%2]
                seen[one] = {"JobID": one, "State": state.strip(), "NodeList": nodes.strip()}
        self.hets.update(join_components(seen, [job_id for job_id in ids if job_id not in self.arrays]))
        if out.returncode != 0 and not seen and "Invalid job id" not in out.stderr:
            return None  # squeue itself failed (controller down): keep what we knew
        for array_id in [job_id for job_id in ids if job_id in self.arrays]:
            # Elements the controller no longer lists have ended: their exit-status files say
            # how. With none (cancelled while waiting, so never run; killed before the trap
            # ran), the element is gone for good, as a job is below: not waiting for ever.
            for index in range(self.arrays[array_id]):
                element = f"{array_id}_{index}"
                if element in seen:
                    continue
                code = self._exit_status(element, array_id)
                if code is None:
                    seen[element] = {"JobID": element, "State": "LOST", "NodeList": ""}
                else:
                    seen[element] = {"JobID": element, "State": "COMPLETED" if code == 0 else "FAILED"}
                    seen[element]["ExitCode"] = f"{code}:0"
        for job_id in [job_id for job_id in ids if job_id not in self.arrays]:
            entry = seen.get(job_id)
            restarts = (
                self._restarts(job_id) if entry is not None else None
            )  # squeue does not say; requeue jobs write it
            if restarts is not None:
                entry["Restarts"] = str(restarts)
            if entry is not None and not JobState.from_slurm(entry["State"]).finished:
                continue  # still queued or running
            code = self._exit_status(job_id)
            if code is not None:
                entry = entry or {"JobID": job_id, "NodeList": ""}
                entry["ExitCode"] = f"{code}:0"
                entry.setdefault("State", "COMPLETED" if code == 0 else "FAILED")
                seen[job_id] = entry
            elif entry is None:
                # Neither the controller nor the file knows it: the job is gone for good.
                seen[job_id] = {"JobID": job_id, "State": "LOST", "NodeList": ""}
        return seen

    def _restarts(self, job_id: str) -> int | None:
        folder = self._folders.get(job_id)
        return None if folder is None else job_restarts(folder, job_id)

    def _exit_status(self, job_id: str, array_id: str | None = None) -> int | None:
        folder = self._folders.get(array_id or job_id)
        return None if folder is None else job_exit_code(folder, job_id)

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return JobState.from_slurm(self.get_state(job_id, mode=mode)).finished


def _answer(command: list[str]) -> str | None:
    """A scheduler command's output, or None when it fails or hangs (slurmctld down)."""
    return answer(command, SCHEDULER_TIMEOUT_S)


def dead_nodes(nodelist: str, clusters: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]] | None:
    """The nodes of ``nodelist`` Slurm holds down, failed or not responding, with its
    reason; None when ``sinfo`` does not answer. ``clusters``: ``--clusters NAME`` for
    another cluster's nodes (its node1 is not this cluster's node1)."""
    if not nodelist:
        return []
    out = _answer(["sinfo", "--noheader", "--Node", *clusters, "--nodes", nodelist, "--format=%N|%T|%E"])
    if out is None:
        return None
    dead = {}
    for line in without_cluster_lines(out).splitlines():
        node, state, reason = (line.split("|") + ["", ""])[:3]
        # %T is e.g. "down*", "drained", "fail", "idle*": '*' means not responding.
        if any(word in state.lower() for word in ("down", "drain", "fail")) or state.endswith("*"):
            dead[node.strip()] = (
                f"{state.strip()}: {reason.strip()}" if reason.strip() not in ("", "none") else state.strip()
            )
    return sorted(dead.items())


class QueueInfo(NamedTuple):
    """Why a job waits, as squeue says: its state, Slurm's reason (``Priority``,
    ``Resources``, ``QOSMaxJobsPerUserLimit`` ...) and the expected start, if Slurm has one."""

    state: JobState
    reason: str | None
    expected_start: float | None  # epoch seconds


# The backfill scheduler plans jobs without a time limit as ending a year from now, so a
# start that far away means "no estimate", not a date.
NO_ESTIMATE_S = 300 * 86400


def queue_info(job_ids: list[str], clusters: list[str] | tuple[str, ...] = ()) -> dict[str, QueueInfo] | None:
    """One ``squeue`` call for ``job_ids`` (``clusters``: ``--clusters NAME``, for another
    cluster's jobs); None when squeue does not answer. Jobs it no longer lists are left
    out (they have ended: ask sacct)."""
    command = ["squeue", "--noheader", "--states=all", "--format=%i|%T|%r|%S", *clusters, "--jobs", ",".join(job_ids)]
    out = _answer(command)
    if out is None:
        return None
    info: dict[str, QueueInfo] = {}
    now = time.time()
    for line in without_cluster_lines(out).splitlines():
        job_id, state, reason, start = (line.split("|") + ["", "", ""])[:4]
        expected = slurm_time(start.strip())
        if expected is not None and not now - 60 <= expected <= now + NO_ESTIMATE_S:
            expected = None
        reason = reason.strip()
        info[job_id.strip()] = QueueInfo(
            JobState.from_slurm(state.strip()), None if reason in ("", "None", "(null)") else reason, expected
        )
    for job_id in job_ids:  # a het job waits as one: squeue lists ID+0, ID+1 ...
        parts = components(info, job_id)
        if job_id not in info and parts:
            info[job_id] = parts[min(parts)]
    return info


def _ranges_first(output: str, header: bool = False) -> str:
    """sacct/squeue output with an array's ranges of waiting elements (``7_[3-9%2]``)
    before the lines of single elements: for a moment after an element starts, both list
    it (``7_3 RUNNING`` and ``7_[3-9%2] PENDING``), and read in this order its own line wins.
    Lines keep their order otherwise (sacct --duplicates lists attempts oldest first)."""
    lines = output.splitlines()
    head, body = (lines[:1], lines[1:]) if header else ([], lines)
    ranges = [line for line in body if "[" in line.split("|", 1)[0]]
    return "\n".join(head + ranges + [line for line in body if "[" not in line.split("|", 1)[0]]) + "\n"


def expand_array_ids(job_id: str) -> list[str]:
    """``7_[3-5%2]`` -> ``7_3 7_4 7_5`` (how squeue and sacct write an array's waiting
    elements); any other id as it is."""
    from submitit.slurm.slurm import read_job_id

    if "[" not in job_id:
        return [job_id]
    ids = []
    for parts in read_job_id(job_id):
        ids += [f"{parts[0]}_{i}" for i in range(int(parts[1]), int(parts[-1]) + 1)]
    return ids


# An attempt that ended so and has a later record of the same job id was requeued:
# REQUEUED (scontrol requeue, hpctf's own requeue at the time limit or on preemption) or
# NODE_FAIL (a node of the job died; Slurm requeues a batch job then, JobRequeue=1 being
# its default, unless it was submitted --no-requeue: sacct lists the NODE_FAIL attempt,
# then the PENDING one; slurmctld logs "requeue job ... due to failure of node node2").
REQUEUED_ATTEMPTS = ("REQUEUED", "NODE_FAIL")


def _records(sacct_output: str) -> dict[str, list[tuple[str, str]]]:
    """(state, node list) of each record of each job, oldest first (steps left out)."""
    records: dict[str, list[tuple[str, str]]] = {}
    for line in sacct_output.splitlines()[1:]:
        job_id, _, rest = line.partition("|")
        if job_id.strip() and "." not in job_id:
            fields = rest.split("|")
            records.setdefault(job_id.strip(), []).append((fields[0], fields[2] if len(fields) > 2 else ""))
    return records


def count_attempts(sacct_output: str) -> dict[str, int]:
    """Attempts per job in ``sacct --duplicates --parsable2`` output: the latest record
    and the requeued ones (:data:`REQUEUED_ATTEMPTS`) right before it (steps not counted).

    ``--duplicates`` also lists older jobs that had the same id (a rebuilt cluster starts
    its ids again); those that ended otherwise end the count (one that ended NODE_FAIL
    would be counted: an id reused right after such a failure, on a rebuilt cluster only).
    A heterogeneous job's components (``ID+0``, ``ID+1``) are counted each, and the job's
    own id has the most of theirs.
    """
    counts: dict[str, int] = {}
    for job_id, records in _records(sacct_output).items():
        earlier = [state for state, _ in records[-2::-1]]  # newest first, the latest left out
        requeued = next((i for i, state in enumerate(earlier) if state not in REQUEUED_ATTEMPTS), len(earlier))
        counts[job_id] = requeued + 1
    for job_id, attempts in list(counts.items()):
        het = het_job_id(job_id)
        if het is not None:
            counts[het] = max(counts.get(het, 0), attempts)
    return counts


def last_requeues(sacct_output: str) -> dict[str, tuple[str, str]]:
    """For each job whose latest attempt follows a requeued one: how that one ended
    (REQUEUED or NODE_FAIL) and its node list."""
    found = {}
    for job_id, records in _records(sacct_output).items():
        if len(records) > 1 and records[-2][0] in REQUEUED_ATTEMPTS:
            found[job_id] = records[-2]
    return found


_WATCHERS: dict[tuple[str, ...], ClusterWatcher] = {(): ClusterWatcher()}


def watcher_for(cluster: str | None) -> ClusterWatcher:
    """The watcher of ``cluster``'s jobs: this cluster's (no ``--clusters``) for this one, a
    run recorded without a cluster or where no Slurm answers; else one that asks with
    ``--clusters NAME`` (multi-cluster sites), so another cluster's job 57 is never looked
    up as this one's."""
    clusters = tuple(flag(cluster)) if cluster else ()
    if clusters not in _WATCHERS:
        _WATCHERS[clusters] = ClusterWatcher(clusters=clusters)
    return _WATCHERS[clusters]


class _Watchers:
    """``SlurmRun.watcher``: on the class, this cluster's watcher (as submitit has it); on a
    handle, the watcher of the cluster the handle's job was submitted to."""

    def __get__(self, job, owner=None) -> ClusterWatcher:
        cluster = None if job is None else job.__dict__.get("cluster")
        return _WATCHERS[()] if cluster is None else watcher_for(cluster)


class SlurmRun(submitit.SlurmJob, ExitCodeResults, RunFolder):
    """A submitit ``SlurmJob`` for an hpctf job: pickles, reattaches, knows its exit code.

    ``result()`` waits and returns the job's exit code (0 on success; see
    :class:`~hpctf.exits.ExitCodeResults`).  Logs are where
    submitit expects them, so ``stdout()``, ``stderr()`` and ``task(n)`` work as usual:
    a job of several tasks has a sub-job per task (``job.task(1).stdout()`` is rank 1's
    output), and its own ``stdout()`` joins every task's, as submitit's does.
    """

    # SlurmJob is the first base so that SlurmRun has core.Job's object layout: submitit's
    # executor.batch() turns its placeholder DelayedJob into the job class in place
    # (``__class__ =``), which Python refuses when the first base is another class
    # (tests/test_submitit_contract.py runs that). The result API is then named here, or
    # core.Job's, which reads a result pickle hpctf jobs never write, would come first.
    result = ExitCodeResults.result
    results = ExitCodeResults.results
    exception = ExitCodeResults.exception

    watcher = _Watchers()

    _cluster_of_new: str | None = None  # what submitit's sub-jobs (one per task) get, while made

    def __init__(self, folder, job_id: str, tasks=(0,), cluster: str | None = None) -> None:
        """``cluster``: another cluster's job (multi-cluster sites), asked with ``--clusters``."""
        cluster = cluster or SlurmRun._cluster_of_new
        if cluster is not None:
            self.cluster = cluster  # kept when pickled
        outer, SlurmRun._cluster_of_new = SlurmRun._cluster_of_new, cluster
        try:
            super().__init__(folder, job_id, tasks)
        finally:
            SlurmRun._cluster_of_new = outer

    def cancel(self, check: bool = True) -> None:
        """submitit's ``scancel JOB``, with ``--clusters`` for another cluster's job."""
        clusters = flag(self.__dict__.get("cluster"))
        if not clusters:
            return super().cancel(check)
        import subprocess

        (subprocess.check_call if check else subprocess.call)(["scancel", *clusters, self.job_id])

    def _register_in_watcher(self) -> None:
        if not self._tasks[0]:
            self.watcher.watch(self.job_id, self.paths.folder)

    @property
    def state(self) -> JobState:  # type: ignore[override]
        return JobState.from_slurm(self.watcher.get_state(self.job_id, mode="standard"))

    @property
    def info(self) -> dict[str, str]:
        return self.watcher.get_info(self.job_id, mode="cache")

    @property
    def restarts(self) -> int | None:
        """How often Slurm requeued the job (None: not known yet)."""
        value = self.info.get("Restarts")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def exit_code(self) -> int | None:
        """The batch script's exit status once it ended, else ``None``; also None for a
        job Slurm ended with a meaningless 0 (TIMEOUT, NODE_FAIL ...: see
        :func:`~hpctf.exits.reported_exit_code`)."""
        state = JobState.from_slurm(self.info.get("State"))
        code = job_exit_code(self.paths.folder, self.job_id)
        if code is None and state.finished:
            code = parse_exit_code(self.info.get("ExitCode"))
        return reported_exit_code(state.value, code)

    def __repr__(self) -> str:
        return f"SlurmRun<job_id={self.job_id}, folder={self.paths.folder}>"
