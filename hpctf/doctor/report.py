"""The doctor's report for people: the checks as a table, the ranks as another, then
what to change for each check that failed or warned."""

from __future__ import annotations

from .model import FAIL, PASS, SKIP, WARN, DoctorRun, rank_row

MARKS = {PASS: "ok", FAIL: "FAIL", WARN: "warn", SKIP: "skip"}


def format_report(run: DoctorRun) -> str:
    from ..table import format_table

    shape = run.shape
    jobs = (
        ", ".join(f"job {j.job_id} ({shape.launch_name(j.launcher)})" for j in run.jobs if j.job_id)
        or "no job submitted"
    )
    lines = [f"hpctf doctor: {shape.description}, {shape.launch_name()}; {jobs}", ""]
    lines.append(
        format_table(("", "CHECK", "RESULT"), [(MARKS[c.status], c.name, c.summary) for c in run.checks]).rstrip("\n")
    )
    if run.jobs[0].reports:
        lines += ["", _rank_table(run)]
    lines += _advice(run)
    lines += ["", _verdict(run)]
    return "\n".join(lines) + "\n"


def _rank_table(run: DoctorRun) -> str:
    """Where each rank of the job's own launch ran, and what it was given."""
    from ..table import format_table

    shape, reports = run.shape, run.jobs[0].reports
    rows = []
    for rank in sorted(reports):
        row = rank_row(rank, reports[rank])
        cuda = row["cuda_visible_devices"]
        rows.append(
            (
                rank,
                row["host"],
                row["launcher_id"],
                row["local_rank"],
                row["role"] or "",
                "(unset)" if cuda is None else (cuda or '""'),
            )
        )
    header = (
        "RANK",
        "HOST",
        "SLURM_PROCID" if shape.launcher == "srun" or shape.backend != "mpi" else "OMPI_RANK",
        "LOCAL",
        "ROLE",
        "CUDA_VISIBLE_DEVICES",
    )
    return format_table(header, rows).rstrip("\n")


def _advice(run: DoctorRun) -> list[str]:
    """Each failed or warning check's details and what to change."""
    lines: list[str] = []
    for check in run.checks:
        if check.status in (FAIL, WARN) and (check.advice or check.details):
            lines += ["", f"{MARKS[check.status]}: {check.name}: {check.summary}"]
            lines += [f"  {d}" for d in check.details]
            if check.advice:
                lines.append(f"  what to change: {check.advice}")
    return lines


def _verdict(run: DoctorRun) -> str:
    failed = [c.name for c in run.checks if c.status == FAIL]
    run_dirs = ", ".join(j.run_dir for j in run.jobs if j.run_dir)
    if failed:
        return f"{len(failed)} check(s) failed: {', '.join(failed)} ({run.seconds:.1f} s; logs in {run_dirs or '-'})"
    return f"all checks passed ({run.seconds:.1f} s; logs in {run_dirs})"
