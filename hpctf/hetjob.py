"""Parameter servers on nodes of their own: the ``#SBATCH`` lines of a heterogeneous job.

A heterogeneous Slurm job is one job of several components, each with its own partition,
nodes and GRES, written as groups of ``#SBATCH`` lines separated by ``#SBATCH hetjob``.
hpctf's has two: component 0 the parameter servers (their partition, no GPU), component
1 the chief and workers (``node_count``, ``partition``, the GPU request, as a plain job).
The batch script runs on component 0's first node; one step over both components
(``srun --het-group=0,1``) starts every task, and ``hpctf.runtime --het`` numbers them
parameter servers first (:func:`hpctf.job.layout.het_task_hosts`).

Options for the whole job (name, time limit, logs, requeue, ``sbatch_options``) go with
component 0, as sbatch reads them there. Slurm starts heterogeneous jobs from the backfill
scheduler only (``SchedulerType=sched/backfill``, the default).
"""

from __future__ import annotations

from typing import Any

HETJOB = "hetjob"  # sbatch's separator between two components' options


def het_directives(spec, job_wide: list[tuple[str, Any]], workers: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The (flag, value) pairs of both components: ``job_wide`` (name, logs, requeue ...)
    and the parameter servers' first, then the separator, then ``workers`` (the chief's
    and workers' component, as a plain job's flags without the job-wide ones)."""
    ps: list[tuple[str, Any]] = [("nodes", spec.ps_nodes), ("ntasks", spec.parameter_server_count)]
    if spec.ps_nodes > 1:  # spread them as spec.ps_on_node() counts them
        ps.append(("ntasks-per-node", max(spec.ps_on_node())))
    optional = [
        ("cpus-per-task", spec.ps_cpus_per_task),
        ("mem", spec.ps_memory),
        ("partition", spec.ps_partition or spec.partition),
        ("account", spec.ps_account or spec.account),
        ("qos", spec.qos),
        ("time", spec.time),
    ]
    ps += [(k, v) for k, v in optional if v is not None]
    return [*job_wide[:1], *ps, *job_wide[1:], (HETJOB, None), *workers]


def het_shape(spec) -> str:
    """'2 ps on 1 node (cpu) + 2 worker(s) + 1 chief on 2 node(s) (gpu)' for the header."""
    where = f" ({spec.ps_partition})" if spec.ps_partition else ""
    rest = [f"{spec.worker_count} worker(s)"] + (["1 chief"] if spec.chief else [])
    there = f" ({spec.partition})" if spec.partition else ""
    return (
        f"{spec.parameter_server_count} ps on {spec.ps_nodes} node(s){where} + "
        f"{' + '.join(rest)} on {spec.node_count} node(s){there}: a heterogeneous job"
    )
