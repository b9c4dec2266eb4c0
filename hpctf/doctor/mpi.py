"""The MPI allreduce check: every rank in one MPI world, with the job's launcher (and the
other one, whose failure only warns), and what to change when it is not."""

from __future__ import annotations

import re

from .hints import UNKNOWN_PLUGIN, first_of, log_hints, missing_summary, tail
from .model import FAIL, PASS, WARN, Check, JobResult, Shape


def expected_sum(shape: Shape) -> int:
    """The allreduce of every rank's number: 0 + 1 + ... + (tasks - 1)."""
    return shape.tasks * (shape.tasks - 1) // 2


def mpi_check(
    shape: Shape, result: JobResult, other: JobResult | None, mpi_list: str | None, secondary: bool = False
) -> Check:
    how = shape.launch_name(result.launcher)
    name = f"MPI allreduce ({how})"
    failed_status = WARN if secondary else FAIL
    note = " (not the job's launcher: a failure here only warns)" if secondary else ""
    if not result.reports:
        return Check(
            name,
            failed_status,
            f"no rank started ({missing_summary(result)}){note}",
            advice=mpi_advice(shape, result, other, mpi_list),
            details=tail(result) if secondary else [],
        )
    results = {r: rep.get("mpi") for r, rep in result.reports.items()}
    problems = mpi_problems(shape, result, results)
    if problems:
        sizes = {m.get("size") for m in results.values() if m and not m.get("error")}
        if sizes == {1} and shape.tasks > 1 and not missing_modules(result):
            text = (
                f"every rank initialised MPI on its own (size 1): {how} does not wire Open MPI's ranks "
                f"together; pass --pmi with a PMIx plugin from `srun --mpi=list`"
                f"{' (' + mpi_list + ')' if mpi_list else ''}, or use --launcher mpirun"
            )
        else:
            text = mpi_advice(shape, result, other, mpi_list)
        return Check(name, failed_status, first_of(problems) + note, advice=text, details=problems + tail(result, 4))
    library = next((m.get("library") for m in results.values() if m and m.get("library")), None)
    via = next((m.get("via") for m in results.values() if m), "mpi4py")
    lib = f"; {library}" if library else ""
    return Check(
        name, PASS, f"{shape.tasks} ranks, size {shape.tasks}, sum {expected_sum(shape)} (via {via}{lib}){note}"
    )


def mpi_problems(shape: Shape, result: JobResult, results: dict[int, dict | None]) -> list[str]:
    """What is wrong with the ranks' MPI results (``results``: each rank's, None where it has none)."""
    from ..job.probe import PHASE_MPI

    problems: list[str] = []
    stuck = [r for r, rep in result.reports.items() if rep.get("phase") == PHASE_MPI]
    if stuck:
        problems.append(
            f"ranks {', '.join(map(str, sorted(stuck)))} never finished MPI_Init/allreduce (hung or crashed)"
        )
    total = expected_sum(shape)
    for rank, mpi in sorted(results.items()):
        if mpi is None:
            if rank not in stuck:
                problems.append(f"rank {rank}: no MPI result")
        elif mpi.get("error"):
            problems.append(f"rank {rank}: {mpi['error']}")
        elif mpi.get("size") != shape.tasks or mpi.get("sum") != total:
            problems.append(
                f"rank {rank}: MPI size {mpi.get('size')} (expected {shape.tasks}), "
                f"allreduce sum {mpi.get('sum')} (expected {total})"
            )
    missing = [r for r in range(shape.tasks) if r not in result.reports]
    if missing:
        problems.append(f"ranks {', '.join(map(str, missing))} did not start")
    return problems


def mpi_advice(shape: Shape, result: JobResult, other: JobResult | None, mpi_list: str | None) -> str:
    """What to change when MPI failed with ``result``'s launcher; ``other``: the job with the
    other launcher, if there was one; ``mpi_list``: the plugins ``srun --mpi=list`` offers."""
    hints = log_hints(shape, result.log_text)
    missing = missing_modules(result)
    no_plugin = not missing and result.launcher == "srun" and bool(UNKNOWN_PLUGIN.search(result.log_text))
    if no_plugin:  # the advice says so, with the plugins srun offers
        hints = [h for h in hints if not h.startswith("srun has no MPI plugin")]
    text = _launcher_advice(shape, result.launcher, mpi_list, missing, no_plugin)
    if result.timed_out:
        text = (
            f"the doctor stopped waiting (--timeout) before the ranks finished; if they hang there every time: {text}"
        )
    if other is not None:
        other_how = shape.launch_name(other.launcher)
        text += f" ({other_how} works here)" if mpi_ok(shape, other) else f" ({other_how} failed too: see its check)"
    return "; ".join([text, *hints])


def _launcher_advice(shape: Shape, launcher: str, mpi_list: str | None, missing: list[str], no_plugin: bool) -> str:
    offered = f": {mpi_list}" if mpi_list else ""
    if missing:
        # Nothing was tried over MPI: the ranks had nothing to try it with.
        return (
            f"the job's Python ({shape.python}) has no {' and no '.join(missing)}, so no rank could "
            "run MPI: install mpi4py (pip install mpi4py) and Horovod built against its TensorFlow "
            "(scripts/install-tf-stack) into that environment, or pass --python with one that has them"
        )
    if no_plugin:
        return (
            f"srun --mpi={shape.pmi} failed: this srun has no '{shape.pmi}' MPI plugin "
            f"(`srun --mpi=list`{offered}): pass --pmi with one of those, or use --launcher mpirun"
        )
    if launcher == "srun":
        return (
            f"srun --mpi={shape.pmi} failed: ask your admin whether PMIx is built in "
            f"(`srun --mpi=list`{offered}), try another --pmi, or use --launcher mpirun"
        )
    return (
        "mpirun failed: is Open MPI's mpirun on PATH in the job (load its module: --setup "
        "'module load openmpi'), and built with Slurm support (`ompi_info | grep slurm`)? "
        "Or use --launcher srun"
    )


def missing_modules(result: JobResult) -> list[str]:
    """Modules whose absence stopped every rank's MPI check ('mpi4py', 'horovod'), or []."""
    errors = [(rep.get("mpi") or {}).get("error") or "" for rep in result.reports.values()]
    if not errors or not all("No module named" in e for e in errors):
        return []
    return sorted({name.split(".")[0] for e in errors for name in re.findall(r"No module named '([\w.]+)'", e)})


def mpi_ok(shape: Shape, result: JobResult) -> bool:
    """Every rank reported, in one MPI world of the right size whose allreduce added up."""
    total = expected_sum(shape)
    return len(result.reports) == shape.tasks and all(
        (rep.get("mpi") or {}).get("size") == shape.tasks and (rep.get("mpi") or {}).get("sum") == total
        for rep in result.reports.values()
    )
