"""``hpctf doctor``: a preflight job of the requested shape that checks what breaks
distributed training on a new cluster, and a report that says what to change.

The doctor job is an ordinary hpctf job: its entry script is :mod:`hpctf.job.probe`, copied
into a source folder of its own, and it goes through :func:`hpctf.submission.plan` and
:func:`~hpctf.submission.schedule` like any submit, so it runs exactly the script (and
launcher, bootstrap, GPU binding, ``TF_CONFIG``) a real job of that shape would. Every
rank leaves a JSON report in the run's log folder; :func:`evaluate` judges them.

Checks: ``sbatch --test-only`` of the doctor's own script; the job ends cleanly; every
rank starts, on the expected nodes; an MPI allreduce across all ranks (``mpi`` backend:
with the job's launcher, and also with the other one, whose failure only warns); GPU
visibility per rank (``CUDA_VISIBLE_DEVICES``); every node name resolves from every rank;
``ps`` backend: every task listens on its ``TF_CONFIG`` port and reaches every other
task's (a heterogeneous job, ``--ps-partition``/``--ps-nodes``: each task on a node of its
own component's partition, and every chief and worker reaches every parameter server
across the partitions); TensorFlow (and Horovod for ``mpi``) import on every node, same versions.

This process never imports TensorFlow, Horovod or mpi4py: the probe does, on the nodes.

The package: :mod:`.model` (the shape, a job's result, a check), the checks as pure
functions (:mod:`.checks`, :mod:`.mpi`, :mod:`.environment`, sharing :mod:`.hints`),
:mod:`.jobs` (the probe folder, submitting the doctor jobs, waiting for them) and
:mod:`.report` (the report for people; :meth:`DoctorRun.to_dict` is the JSON one).
"""

from __future__ import annotations

from .checks import (
    cross_partition_check,
    evaluate,
    gpu_check,
    hostname_check,
    job_check,
    partitions_check,
    ports_check,
    ranks_check,
)
from .environment import environment_check, keras_check
from .hints import first_of, log_hints
from .jobs import probe_arguments, probe_folder, read_logs, read_reports, run, sbatch_test_only, wait_for
from .model import (
    DEFAULT_TIME,
    FAIL,
    NOT_STARTED,
    PASS,
    PROBE_NAME,
    PROBE_TIMEOUT_S,
    SKIP,
    WARN,
    Check,
    DoctorRun,
    JobResult,
    Shape,
)
from .mpi import missing_modules, mpi_check
from .report import format_report

__all__ = [
    "DEFAULT_TIME",
    "FAIL",
    "NOT_STARTED",
    "PASS",
    "PROBE_NAME",
    "PROBE_TIMEOUT_S",
    "SKIP",
    "WARN",
    "Check",
    "DoctorRun",
    "JobResult",
    "Shape",
    "cross_partition_check",
    "environment_check",
    "evaluate",
    "first_of",
    "format_report",
    "gpu_check",
    "hostname_check",
    "job_check",
    "keras_check",
    "log_hints",
    "missing_modules",
    "mpi_check",
    "partitions_check",
    "ports_check",
    "probe_arguments",
    "probe_folder",
    "ranks_check",
    "read_logs",
    "read_reports",
    "run",
    "sbatch_test_only",
    "wait_for",
]
