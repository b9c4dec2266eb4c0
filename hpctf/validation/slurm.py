"""The Slurm fields: job name, partition, account, QOS, GPU type, constraint, memory,
compute target, time, CPUs, exclusive, and the ``sbatch_options`` escape hatch."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..slurmtime import valid_time
from .checks import Checks
from .sbatch_options import check_sbatch_options

if TYPE_CHECKING:
    from ..spec import TensorFlow

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+\Z")
_NAME_LIST = re.compile(r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*\Z")
_MEMORY = re.compile(r"^[0-9]+[KMGTkmgt]?\Z")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.\-&|\[\]*:()!,]+\Z")


def check_slurm(c: Checks, spec: TensorFlow) -> None:
    if c.text("job_name", spec.job_name) and spec.job_name is not None:
        if len(spec.job_name) > 200:
            c.add("job_name", spec.job_name, "must be at most 200 characters")
        c.no_backslash("job_name", spec.job_name)
    _check_names(c, spec)
    c.pattern("memory", spec.memory, _MEMORY, "must be a size such as '16G', '4000M' or '4000' (MB)")
    c.pattern("ps_memory", spec.ps_memory, _MEMORY, "must be a size such as '16G', '4000M' or '4000' (MB)")
    c.pattern("compute_target", spec.compute_target, _NAME, "must be a target name (letters, digits, '_', '-', '.')")
    if spec.time is not None and not valid_time(spec.time):
        c.add(
            "time",
            spec.time,
            "must be a Slurm time: 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM' or 'D-HH:MM:SS'",
        )
    c.count("cpus_per_task", spec.cpus_per_task, optional=True)
    c.boolean("exclusive", spec.exclusive)
    if spec.gpu_type is not None and spec.use_gpu is False:
        c.add("gpu_type", spec.gpu_type, "needs use_gpu=True or gpus_per_node >= 1")
    if c.mapping("sbatch_options", spec.sbatch_options):
        check_sbatch_options(c, spec.sbatch_options)


def _check_names(c: Checks, spec: TensorFlow) -> None:
    """Partition, account, QOS, GPU type and constraint: Slurm's names and expressions."""
    c.pattern(
        "partition",
        spec.partition,
        _NAME_LIST,
        "must be a partition name (letters, digits, '_', '-', '.'; several separated by ',')",
    )
    c.pattern("account", spec.account, _NAME, "must be an account name (letters, digits, '_', '-', '.')")
    c.pattern(
        "ps_partition",
        spec.ps_partition,
        _NAME_LIST,
        "must be a partition name (letters, digits, '_', '-', '.'; several separated by ',')",
    )
    c.pattern("ps_account", spec.ps_account, _NAME, "must be an account name (letters, digits, '_', '-', '.')")
    c.pattern("qos", spec.qos, _NAME, "must be a QOS name (letters, digits, '_', '-', '.')")
    c.pattern("gpu_type", spec.gpu_type, _NAME, "must be a GPU type as in gres.conf, such as 'a100' or 'v100_32gb'")
    c.pattern("constraint", spec.constraint, _CONSTRAINT, "must be a Slurm constraint expression such as 'ib&v100'")
    for name in ("partition", "account", "qos", "constraint", "ps_partition", "ps_account"):
        c.slurm_length(name, getattr(spec, name))
