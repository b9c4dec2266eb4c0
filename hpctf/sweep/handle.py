"""A sweep, described and submitted from Python, and the handle that follows it.

::

    sweep = hpctf.Sweep(estimator, {"lr": "loguniform(1e-4, 1e-1)", "batch": [32, 64]},
                        metric="val_accuracy", goal="max", trials=12, parallel=3)
    run = sweep.submit()          # one sbatch: a job array, one element a trial
    run.state, run.trials(), run.best(), run.plot(), run.wait(), run.cancel()
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import HpctfError
from .config import SweepConfig
from .space import parse_space


def load_space_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A TOML sweep file: its ``[params]`` table and its other keys (metric, goal, trials,
    parallel, sampler, early_stop, seed, storage)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise HpctfError(f"space file {str(path)!r}: {err}") from None
    params = data.pop("params", {})
    if not isinstance(params, dict):
        raise HpctfError(f"space file {str(path)!r}: [params] must be a table of NAME = DISTRIBUTION")
    unknown = sorted(set(data) - set(SweepConfig.__dataclass_fields__) - {"params"})
    if unknown:
        allowed = ", ".join(f for f in SweepConfig.__dataclass_fields__ if f != "params")
        raise HpctfError(f"space file {str(path)!r}: unknown key(s) {', '.join(unknown)}; allowed: [params], {allowed}")
    return params, data


def space_texts(space: Mapping[str, Any] | Sequence[str]) -> tuple[str, ...]:
    """``{"lr": "loguniform(1e-4, 1e-1)", "batch": [32, 64]}`` or ``["lr=..."]`` as
    ``--param`` texts (how sweep.json keeps them), checked."""
    if isinstance(space, Mapping):
        return tuple(str(p) for p in parse_space(table=space))
    if isinstance(space, str):
        raise HpctfError("space: a mapping {name: distribution} or a list of 'NAME=DISTRIBUTION(ARGS)' texts")
    parse_space(list(space))
    return tuple(space)


class Sweep:
    """A sweep of ``estimator`` (an :class:`hpctf.TensorFlow`) over ``space``, checked now:
    a bad parameter, goal or budget raises :class:`~hpctf.errors.SpecError` naming it."""

    def __init__(
        self,
        estimator,
        space: Mapping[str, Any] | Sequence[str],
        *,
        metric: str,
        goal: str = "min",
        trials: int | None = None,
        parallel: int | None = None,
        sampler: str = "random",
        early_stop: str = "none",
        seed: int = 0,
        storage: str | None = None,
    ):
        self.estimator = estimator
        self.config = SweepConfig(
            params=space_texts(space),
            metric=metric,
            goal=goal,
            sampler=sampler,
            seed=seed,
            trials=trials,
            parallel=parallel,
            early_stop=early_stop,
            storage=storage,
        ).checked()

    def submit(self, *, home: str | Path | None = None, template_dirs: Sequence[str | Path] = ()) -> SweepRun:
        """Snapshot the code, submit the job array, record it: a :class:`SweepRun`."""
        from .. import submission

        plan = submission.plan(self.estimator, home=home, template_dirs=template_dirs, sweep=self.config)
        return SweepRun(submission.schedule(plan))

    def __repr__(self) -> str:
        return f"Sweep({self.estimator.entry_script!r}, {list(self.config.params)}, metric={self.config.metric!r})"


class SweepRun:
    """A submitted sweep: the job array followed as one job (``state``, ``wait``,
    ``cancel``), and its trials (``trials()``, ``best()``)."""

    def __init__(self, record, registry=None):
        from ..registry import Registry
        from ..runpaths import RunPaths

        if not record.sweep:
            raise HpctfError(f"job {record.job_id} is not a sweep (hpctf.attach gives its handle)")
        self.record = record
        self.registry = registry if registry is not None else Registry(RunPaths.of(record).registry)
        self.config = SweepConfig.read(Path(record.run_dir))

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def folder(self) -> Path:
        """The sweep folder: the script, the study, trials/<index>/ of every trial."""
        return Path(self.record.run_dir)

    @property
    def state(self):
        """The array's state (:class:`~hpctf.states.JobState`), refreshed: one scheduler call."""
        from ..runs import refresh
        from ..states import JobState

        refresh(self.registry, [self.record])
        return JobState.from_slurm(self.record.state)

    def done(self) -> bool:
        return self.state.finished

    def wait(self, poll_s: float = 5.0) -> None:
        """Until every element has ended."""
        while not self.done():
            time.sleep(poll_s)

    def cancel(self) -> None:
        """End the whole array: waiting elements never start, running ones stop."""
        from ..runs import cancel

        cancel(self.record)

    def trials(self) -> list:
        """Every trial, best first (:class:`~hpctf.sweep.report.TrialRow`)."""
        from .. import executors
        from ..runs import refresh
        from .report import trial_rows

        refresh(self.registry, [self.record])
        elements = executors.for_record(self.record).elements(self.record)
        return trial_rows(self.folder, self.config, self.job_id, elements)

    def best(self):
        """The best complete trial (its parameters, value and folder), or None yet."""
        from .report import best

        return best(self.trials())

    def plot(self, out_dir: str | Path | None = None) -> list[Path]:
        """Write the optimization history and the parameter importance as PNGs into
        ``out_dir`` (default: the sweep folder); their paths. Needs matplotlib (the ``plot``
        extra); see :func:`~hpctf.sweep.plots.write_plots`."""
        from .plots import write_plots

        return write_plots(self.folder, out_dir)

    def __repr__(self) -> str:
        return f"SweepRun<job_id={self.job_id}, folder={self.folder}>"
