"""What a sweep adds to the job script: the job array, and each element's trial.

One Slurm job array runs the sweep (``--array=0-N%K``, one element a trial). Every
element's script asks the study for its trial's parameters before any task starts and
tells it how the trial ended from its EXIT trap (:mod:`hpctf.sweep.trial`), with the
interpreter that runs hpctf here: it has Optuna, and the sweep folder is on the file
system the nodes share. This module turns a :class:`~hpctf.sweep.config.SweepConfig`
into the template's ``sweep`` context.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .config import SweepConfig
from .study import TRIALS_DIR


def sweep_context(config: SweepConfig, folder: Path, python: str | None = None) -> dict[str, Any]:
    """The template's ``sweep``: where the study is, who asks it, the array and its policy."""
    what = "grid search" if config.sampler == "grid" else f"{config.sampler} search"
    at_once = f", {config.parallel} at once" if config.parallel else ""
    return {
        "folder": str(folder),
        "trials_dir": str(Path(folder) / TRIALS_DIR),
        "python": python or sys.executable,
        "array": config.array,
        "summary": f"{config.trials} trial(s){at_once}: {what} for the {config.goal} of {config.metric}",
        "metric": config.metric,
        "early_stop": None if config.early_stop == "none" else config.early_stop,
    }
