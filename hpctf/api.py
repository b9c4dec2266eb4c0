"""The Python API for notebooks: submit an estimator, get a submitit handle back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .registry import Registry
from .runpaths import registry_file
from .spec import TensorFlow


def submit(
    estimator: TensorFlow,
    *,
    home: str | Path | None = None,
    template_dirs: Sequence[str | Path] = (),
    snapshot_limit_mb: float | None = None,
):
    """Snapshot the code, submit the job, record it; a :class:`~hpctf.executors.slurm.watch.SlurmRun`.

    >>> job = hpctf.submit(hpctf.TensorFlow(source_directory=".", entry_script="train.py"))
    >>> job.state, job.wait(), job.result(), print(job.stdout())
    """
    from . import submission
    from .runs import handle

    record = submission.schedule(
        submission.plan(estimator, home=home, template_dirs=template_dirs, snapshot_limit_mb=snapshot_limit_mb)
    )
    return handle(record)


def attach(job_id: str | int, *, home: str | Path | None = None, cluster: str | None = None):
    """The handle of a job submitted earlier (by any process), from the run history; for
    a sweep, its :class:`~hpctf.sweep.handle.SweepRun`. ``cluster``: the job of that
    cluster, where one home holds runs of several (job ids collide between clusters)."""
    from .runs import handle

    registry = Registry(registry_file(home) if home else None)
    try:
        record = registry.get(str(job_id), cluster=cluster)
    finally:
        registry.close()
    if record.sweep:
        from .sweep.handle import SweepRun

        return SweepRun(record)
    return handle(record)
