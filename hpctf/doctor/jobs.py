"""Running the doctor job(s): the probe folder they run from, planning and submitting them
like any hpctf job, waiting for them to end, and reading what their ranks left."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import HpctfError
from .checks import evaluate
from .model import DEFAULT_TIME, FAIL, PASS, PROBE_NAME, PROBE_TIMEOUT_S, SKIP, Check, DoctorRun, JobResult, Shape
from .mpi import mpi_ok

Ended = dict[str, tuple[str, int | None, bool]]  # job id -> (state, exit code, timed out)


def probe_source() -> Path:
    from ..job import probe

    return Path(probe.__file__)


@contextlib.contextmanager
def probe_folder() -> Iterator[str]:
    """A temporary source folder holding only the probe, as the doctor job's code: the
    one place it is made (the CLI makes it to build its spec, and passes it to :func:`run`)."""
    with tempfile.TemporaryDirectory(prefix="hpctf-doctor-") as source:
        shutil.copy(probe_source(), Path(source) / PROBE_NAME)
        yield source


def probe_arguments(shape: Shape, launcher: str, full: bool) -> list[str]:
    """The probe's argv. ``full``: the job's own launch (all checks); else MPI only."""
    args = ["--tasks", str(shape.tasks), "--launcher", launcher, "--timeout", str(PROBE_TIMEOUT_S)]
    if shape.backend == "mpi":
        args.append("--mpi")
    if full:
        args.append("--env")
        if shape.backend == "mpi":
            args.append("--horovod")
            if shape.keras != "3":  # Horovod's Keras layer needs tf-keras: no use trying it
                args.append("--keras")
        if shape.backend == "ps":
            args.append("--ports")
        if shape.gpus:
            args.append("--gpus")
    return args


def sbatch_test_only(script: str) -> Check:
    name = "sbatch --test-only"
    try:
        done = subprocess.run(["sbatch", "--test-only"], input=script, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return Check(
            name, FAIL, "sbatch is not on PATH", advice="run hpctf doctor on a Slurm login node (or --target local)"
        )
    except subprocess.TimeoutExpired:
        return Check(name, FAIL, "sbatch did not answer in 60 s", advice="is slurmctld up? (`scontrol ping`)")
    text = (done.stderr.strip() or done.stdout.strip()).replace("sbatch: ", "")
    if done.returncode == 0:
        return Check(name, PASS, f"Slurm accepts the script: {text}")
    advice = (
        "change the shape or where it goes: fewer nodes/GPUs/CPUs per node, --partition, --account, --qos or --time"
    )
    if re.search(r"gres|gpu", text, re.I):
        advice = (
            "the partition's nodes do not have that many GPUs (or that --gpu-type): `sinfo -o '%P %N %G'` lists them"
        )
    elif re.search(r"time limit", text, re.I):
        advice = "the --time is above the partition's limit: `sinfo -o '%P %l'`"
    return Check(name, FAIL, f"sbatch refuses the script: {text}", advice=advice)


def read_reports(log_dir: Path, job_id: str) -> dict[int, dict]:
    reports: dict[int, dict] = {}
    from ..job.probe import report_name

    for path in log_dir.glob(report_name(job_id, "*")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        reports[int(data.get("rank", path.stem.rsplit("_", 1)[1]))] = data
    return reports


def read_logs(log_dir: Path, job_id: str, lines: int = 12) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(log_dir.glob(f"{job_id}_*_log.*")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        body = [line for line in text.splitlines() if line.strip() and not line.startswith("hpctf doctor: rank ")]
        if body:
            out[path.name] = "\n".join(body[-lines:])
    return out


def wait_for(records: list, deadline: float, poll_s: float = 0.3) -> Ended:
    """Wait for the records' jobs to end: {job id: (state, exit code, timed out)}.

    The exit-status file every hpctf script writes says a job ended the moment it does
    (accounting lags by seconds); the scheduler is asked every few seconds for jobs that
    end without one (cancelled while queued).
    """
    from ..registry import Registry
    from ..runpaths import RunPaths

    results: Ended = {}
    registry = Registry(RunPaths.of(records[0]).registry)
    last_refresh = 0.0
    try:
        while True:
            live = [r for r in records if r.job_id not in results]
            if not live:
                return results
            results.update(_exited(live))
            live = [r for r in records if r.job_id not in results]
            if live and time.monotonic() - last_refresh > 3:
                last_refresh = time.monotonic()
                results.update(_finished(registry, live))
            if time.monotonic() > deadline:
                results.update(_give_up(registry, [r for r in records if r.job_id not in results]))
                return results
            time.sleep(poll_s)
    finally:
        registry.close()


def _exited(live: list) -> Ended:
    """The jobs whose exit-status file is there."""
    from ..exits import job_exit_code

    ended: Ended = {}
    for record in live:
        code = job_exit_code(record.log_dir, record.job_id)
        if code is not None:
            ended[record.job_id] = ("COMPLETED" if code == 0 else "FAILED", code, False)
    return ended


def _finished(registry: Any, live: list) -> Ended:
    """The jobs the scheduler says ended."""
    from ..runs import refresh
    from ..states import JobState

    ended: Ended = {}
    refresh(registry, live)  # one scheduler call for all of them
    for record in live:
        if JobState.from_slurm(record.state).finished:  # exit_code: the script's own first
            ended[record.job_id] = (record.state, record.exit_code, False)
    return ended


def _give_up(registry: Any, late: list) -> Ended:
    """Cancels the jobs still running at the deadline, as they last stood."""
    from ..runs import cancel, refresh

    ended: Ended = {}
    refresh(registry, late)
    for record in late:
        state = record.state
        try:
            cancel(record)
        except HpctfError:
            pass
        ended[record.job_id] = (state, None, True)
    return ended


def run(
    spec: Any,
    *,
    template_dirs: Sequence[str | Path] = (),
    other_launcher: bool = True,
    timeout_s: float = 600,
    progress: Callable[[str], None] | None = None,
    source: str | None = None,
) -> DoctorRun:
    """Submit the doctor job(s) for ``spec``'s shape, wait, judge; nothing is raised for
    a failing check (only for a spec or target that cannot be planned at all).

    ``source``: the folder :func:`probe_folder` made (the CLI's); None: one is made here."""
    say = progress or (lambda message: None)
    started = time.monotonic()
    with contextlib.nullcontext(source) if source else probe_folder() as folder:
        shape, plans = plan_jobs(spec, folder, template_dirs, other_launcher)
        test_only = _test_only(plans[0][1], say)
        results, records = _submit(shape, plans, test_only, say)
    if records:
        say("waiting for the doctor job(s) to run ...")
        _collect(results, wait_for(records, started + timeout_s))
    mpi_list = None
    if shape.backend == "mpi" and any(r.launcher == "srun" and not mpi_ok(shape, r) for r in results if r.job_id):
        from ..executors.slurm.check import srun_mpi_list

        mpi_list = srun_mpi_list()
    checks = evaluate(shape, test_only, results[0], results[1] if len(results) > 1 else None, mpi_list)
    return DoctorRun(shape=shape, checks=checks, jobs=results, seconds=time.monotonic() - started)


def plan_jobs(
    spec: Any, source: str, template_dirs: Sequence[str | Path], other_launcher: bool
) -> tuple[Shape, list[tuple[str, Any]]]:
    """The shape to expect, and the doctor job(s) to submit: (launcher, plan), the job's own first."""
    from .. import submission

    spec = spec.with_changes(
        source_directory=source,
        entry_script=PROBE_NAME,
        script_params={},
        arguments=[],
        job_name=spec.job_name or "hpctf-doctor",
    )
    the_plan = submission.plan(spec, template_dirs=template_dirs)
    if the_plan.spec.time is None:  # neither the command line nor the target set one
        spec = spec.with_changes(time=DEFAULT_TIME)
        the_plan = submission.plan(spec, template_dirs=template_dirs)
    python = script_python(the_plan.script)
    shape = Shape.from_spec(the_plan.spec, python)
    full = spec.with_changes(arguments=probe_arguments(shape, shape.launcher, full=True))
    plans = [(shape.launcher, submission.plan(full, template_dirs=template_dirs))]
    shape = Shape.from_spec(plans[0][1].spec, python)  # the local target picks free ports per plan
    # On this machine both launchers are Open MPI's mpirun: the other one adds nothing.
    if shape.backend == "mpi" and other_launcher and not the_plan.executor.runs_here:
        other = "mpirun" if shape.launcher == "srun" else "srun"
        other_spec = spec.with_changes(
            launcher=other, arguments=probe_arguments(shape, other, full=False), job_name=f"{spec.job_name}-{other}"
        )
        plans.append((other, submission.plan(other_spec, template_dirs=template_dirs)))
    return shape, plans


def _test_only(plan: Any, say: Callable[[str], None]) -> Check:
    from ..executors.slurm import SlurmExecutor

    if not isinstance(plan.executor, SlurmExecutor):
        return Check(
            "sbatch --test-only", SKIP, f"{plan.target} target: the script runs with {plan.command[0]}, not sbatch"
        )
    say("sbatch --test-only ...")
    return sbatch_test_only(plan.script)


def _submit(
    shape: Shape, plans: list[tuple[str, Any]], test_only: Check, say: Callable[[str], None]
) -> tuple[list[JobResult], list]:
    """Submits the planned jobs (none if sbatch --test-only refused): a result for each, and the records."""
    from .. import submission

    results = [JobResult(launcher=launcher) for launcher, _ in plans]
    records = []
    if test_only.status == FAIL:
        return results, records
    for (launcher, a_plan), result in zip(plans, results):
        try:
            record = submission.schedule(a_plan)
        except HpctfError as err:
            result.error = str(err)
            continue
        result.job_id, result.run_dir = record.job_id, record.run_dir
        records.append(record)
        say(f"submitted doctor job {record.job_id} ({shape.launch_name(launcher)})")
    return results, records


def _collect(results: list[JobResult], ended: Ended) -> None:
    """Fills in how each ended job ended and what its ranks wrote."""
    for result in results:
        if result.job_id in ended:
            result.state, result.exit_code, result.timed_out = ended[result.job_id]
            log_dir = Path(result.run_dir) / "logs"
            result.reports = read_reports(log_dir, result.job_id)
            result.logs = read_logs(log_dir, result.job_id)


def script_python(script: str) -> str:
    """The interpreter the script starts (``PYTHON=...``, its first assignment)."""
    import shlex

    match = re.search(r"^PYTHON=(.*)$", script, re.M)
    try:
        return shlex.split(match.group(1))[0] if match else "python3"
    except (ValueError, IndexError):
        return "python3"
