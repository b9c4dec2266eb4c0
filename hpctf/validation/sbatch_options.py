"""The ``sbatch_options`` escape hatch: which flags it takes, and the ones hpctf writes itself."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .checks import Checks

# Flags hpctf writes itself; setting them through ``sbatch_options`` would contradict
# the spec, so the escape hatch refuses them and names the field to use instead.
MANAGED_SBATCH_FLAGS = {
    "job-name": "job_name",
    "J": "job_name",
    "nodes": "node_count",
    "N": "node_count",
    "ntasks": "process_count_per_node",
    "n": "process_count_per_node",
    "ntasks-per-node": "process_count_per_node",
    "cpus-per-task": "cpus_per_task",
    "c": "cpus_per_task",
    "gres": "gpus_per_node",
    "gpus": "gpus_per_node",
    "G": "gpus_per_node",
    "gpus-per-node": "gpus_per_node",
    "gpus-per-task": "gpus_per_node",
    "partition": "partition",
    "p": "partition",
    "account": "account",
    "A": "account",
    "qos": "qos",
    "q": "qos",
    "time": "time",
    "t": "time",
    "mem": "memory",
    "constraint": "constraint",
    "C": "constraint",
    "exclusive": "exclusive",
    "output": "(hpctf's run folder)",
    "o": "(hpctf's run folder)",
    "error": "(hpctf's run folder)",
    "e": "(hpctf's run folder)",
    "open-mode": "(hpctf's run folder)",
    "chdir": "source_directory",
    "D": "source_directory",
    "wrap": "entry_script",
    # These change what sbatch does or prints, which hpctf's tracking relies on.
    "array": "(one run per submit)",
    "a": "(one run per submit)",
    "wait": "(hpctf submit --wait)",
    "W": "(hpctf submit --wait)",
    "parsable": "(hpctf's submission)",
    "help": "(hpctf's submission)",
    "usage": "(hpctf's submission)",
    "version": "(hpctf's submission)",
    "test-only": "(hpctf submit --dry-run)",
    "export": "environment_variables",
    "mem-per-cpu": "memory",
    "mem-per-gpu": "memory",
    "ntasks-per-core": "process_count_per_node",
    "ntasks-per-socket": "process_count_per_node",
    "ntasks-per-gpu": "process_count_per_node",
}

# slurmctld refuses longer strings than SLURM_STRING_LIMIT in these flags.
_LIMITED_SBATCH_FLAGS = (
    "comment",
    "licenses",
    "mail-user",
    "mcs-label",
    "network",
    "reservation",
    "wckey",
    "cluster-constraint",
)
_SBATCH_FLAG = re.compile(r"^[A-Za-z][A-Za-z0-9-]*\Z")


def check_sbatch_options(c: Checks, options: Mapping[Any, Any]) -> None:
    for flag, value in options.items():
        _check_option(c, flag, value)


def _check_option(c: Checks, flag: Any, value: Any) -> None:
    shown = f"sbatch_options[{flag!r}]"
    if not isinstance(flag, str) or not _SBATCH_FLAG.match(flag.lstrip("-")):
        c.add("sbatch_options", flag, "keys must be sbatch flag names such as 'mail-type' or 'reservation'")
    elif len(flag.lstrip("-")) == 1:
        c.add("sbatch_options", flag, "use the long flag name (e.g. 'nodelist', not 'w')")
    elif _managed_flag(flag.lstrip("-")):
        managed = _managed_flag(flag.lstrip("-"))
        instead = MANAGED_SBATCH_FLAGS[managed]
        if instead.startswith("("):  # no field of the estimator: hpctf decides it
            c.add(shown, value, f"is set by hpctf (--{managed}: {instead[1:-1]}) and cannot be overridden")
        else:
            c.add(shown, value, f"is set by hpctf (--{managed}): use the estimator's {instead} instead")
    elif value is None or value is True:
        return  # a bare flag such as --requeue
    elif isinstance(value, bool) or not isinstance(value, (str, int)):
        c.add(shown, value, "must be a string, an integer, True or None (a bare flag)")
    elif isinstance(value, str) and c.text(shown, value):
        c.no_backslash(shown, value)
        if any(f.startswith(flag.lstrip("-")) for f in _LIMITED_SBATCH_FLAGS):
            c.slurm_length(shown, value)


def _managed_flag(name: str) -> str | None:
    """The managed flag ``name`` means: sbatch accepts any unambiguous prefix of a long flag
    (``--ntasks-per-n`` is ``--ntasks-per-node``), so prefixes are refused too."""
    for managed in MANAGED_SBATCH_FLAGS:
        if len(managed) > 1 and (managed == name or managed.startswith(name)):
            return managed
    return None
