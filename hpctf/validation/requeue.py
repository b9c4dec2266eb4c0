"""Requeue: max_restarts and signal_grace, against the time limit and sbatch_options."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..requeue import MAX_SIGNAL_GRACE_S, MIN_SIGNAL_GRACE_S, REQUEUE_MARGIN_S, requeue_limits
from ..slurmtime import time_limit_seconds, valid_time
from .checks import Checks, is_int

if TYPE_CHECKING:
    from ..spec import TensorFlow

# sbatch flags the requeue section writes or contradicts (sbatch also takes prefixes).
_REQUEUE_FLAGS = ("requeue", "no-requeue", "signal")


def check_requeue(c: Checks, spec: TensorFlow) -> None:
    c.boolean("requeue", spec.requeue)
    restarts_ok = c.count("max_restarts", spec.max_restarts, minimum=0, optional=True)
    grace = spec.signal_grace
    grace_ok = grace is None or (is_int(grace) and MIN_SIGNAL_GRACE_S <= grace <= MAX_SIGNAL_GRACE_S)
    if not grace_ok:
        c.add(
            "signal_grace",
            grace,
            f"must be whole seconds between {MIN_SIGNAL_GRACE_S} and {MAX_SIGNAL_GRACE_S}: the tasks "
            f"get signal_grace - {REQUEUE_MARGIN_S} s to save a checkpoint, the rest is for the requeue",
        )
    if spec.requeue is not True:
        for name in ("max_restarts", "signal_grace"):
            if getattr(spec, name) is not None:
                c.add(name, getattr(spec, name), "needs requeue=True")
        return
    if restarts_ok and spec.max_restarts is not None and spec.max_restarts > 1000:
        c.add("max_restarts", spec.max_restarts, "must be at most 1000")
    if grace_ok and isinstance(spec.time, str) and valid_time(spec.time):
        _check_grace_in_time(c, spec)
    if isinstance(spec.sbatch_options, dict):
        for flag, value in spec.sbatch_options.items():
            name = flag.lstrip("-") if isinstance(flag, str) else ""
            if len(name) > 1 and any(f.startswith(name) for f in _REQUEUE_FLAGS):
                c.add(
                    f"sbatch_options[{flag!r}]",
                    value,
                    "is set by hpctf when requeue=True (--requeue, --signal=B:USR1@signal_grace): "
                    "use max_restarts and signal_grace instead",
                )


def _check_grace_in_time(c: Checks, spec: TensorFlow) -> None:
    limit = time_limit_seconds(spec.time)
    _, lead = requeue_limits(spec)
    if limit is not None and lead >= limit:
        c.add(
            "signal_grace",
            lead,
            f"must be shorter than the time limit ({spec.time!r} = {limit} s): Slurm would "
            "signal the job as soon as it starts",
        )
