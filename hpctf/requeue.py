"""Requeue on preemption and time limits: the defaults and bounds of the estimator's
``max_restarts`` and ``signal_grace`` (checked in :mod:`hpctf.validation.requeue`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import TensorFlow

DEFAULT_MAX_RESTARTS = 3
DEFAULT_SIGNAL_GRACE_S = 120
# The job script keeps this much of the grace period for `scontrol requeue` itself: the
# tasks get signal_grace - REQUEUE_MARGIN_S seconds to save and exit.
REQUEUE_MARGIN_S = 15
MIN_SIGNAL_GRACE_S = 30
MAX_SIGNAL_GRACE_S = 65535  # sbatch --signal=...@N takes 0..65535 seconds


def requeue_limits(spec: TensorFlow) -> tuple[int, int]:
    """(max_restarts, signal_grace) with their defaults filled in."""
    restarts = DEFAULT_MAX_RESTARTS if spec.max_restarts is None else spec.max_restarts
    grace = DEFAULT_SIGNAL_GRACE_S if spec.signal_grace is None else spec.signal_grace
    return restarts, grace
