"""A sweep as two PNGs (``hpctf sweep plot``, ``SweepRun.plot()``): the optimization
history and each parameter's importance for the metric. Needs matplotlib (the ``plot``
extra) beside Optuna (the ``sweep`` extra).

- ``optimization_history.png``: every complete trial's value by trial number (the order
  the study handed trials out), the best value so far as a step line, the best trial marked;
- ``param_importance.png``: each parameter's share of the importance, by Optuna's
  PED-ANOVA evaluator (Parzen estimators on numpy: no scikit-learn, which Optuna's fANOVA
  and mean-decrease-impurity evaluators need). It compares where the best tenth of the
  complete trials lie with where all of them lie: a parameter whose good values cluster
  matters, one whose good values are spread like the rest does not.

Both are drawn here with plain matplotlib rather than ``optuna.visualization.matplotlib``
(experimental, restyled between Optuna 4 and 5, and it would compute the importances a
second time): the bars show exactly what :func:`importances` returns.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from ..errors import HpctfError
from .config import SweepConfig

HISTORY_PNG = "optimization_history.png"
IMPORTANCE_PNG = "param_importance.png"
DPI = 110
PLOT_NEEDS = "sweep plots need matplotlib, which is not installed: pip install 'hpctf[plot]'"


def complete_trials(folder: Path, config: SweepConfig | None = None) -> list:
    """The sweep's complete trials with a finite value (Optuna's FrozenTrial), by number."""
    config = config or SweepConfig.read(folder)
    return [
        t
        for t in config.study(folder).trials()
        if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)
    ]


def importances(folder: Path) -> dict[str, float]:
    """Each parameter's importance for the sweep's metric (shares that sum to 1), most
    important first. HpctfError when it cannot be told: fewer than 2 complete trials, a
    parameter that took one value in every complete trial, or one value of the metric in all."""
    folder = Path(folder)
    config = SweepConfig.read(folder)
    return _importances(folder, config, complete_trials(folder, config))


def _importances(folder: Path, config: SweepConfig, trials: list) -> dict[str, float]:
    import optuna

    if len(trials) < 2:
        raise HpctfError(
            f"parameter importance needs at least 2 complete trials; the sweep in {folder} has {len(trials)}"
        )
    names = [p.name for p in config.space]
    fixed = {}
    for name in names:
        values = {repr(t.params.get(name)) for t in trials}
        if len(values) == 1:
            fixed[name] = values.pop()
    if fixed:
        said = ", ".join(f"{name!r} (always {value})" for name, value in fixed.items())
        raise HpctfError(
            f"parameter importance: {said} took one value in all {len(trials)} complete trials, so its "
            "importance cannot be told; wait for more trials (hpctf sweep status), or give it more than one value"
        )
    if len({t.value for t in trials}) == 1:
        raise HpctfError(
            f"parameter importance: all {len(trials)} complete trials have {config.metric}={trials[0].value:.6g}, "
            "so no parameter made a difference that can be measured"
        )
    with warnings.catch_warnings():
        # The evaluator is experimental in Optuna 4 (from 3.6), the default one in 5; what its
        # UserWarnings say (too few trials, all of them tied) is checked above, in words.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        found = optuna.importance.get_param_importances(
            config.study(folder).optuna_study(), evaluator=evaluator, params=names
        )
    return {name: float(value) for name, value in found.items()}


def write_plots(folder: Path, out_dir: Path | None = None) -> list[Path]:
    """Write ``optimization_history.png`` and ``param_importance.png`` for the sweep in
    ``folder`` into ``out_dir`` (default: the sweep folder); the paths written.

    The history needs one complete trial, the importance two and every parameter varied:
    when only the history can be drawn, it is written and HpctfError says why the other
    is not."""
    plt = _pyplot()
    folder = Path(folder)
    config = SweepConfig.read(folder)
    out = Path(out_dir) if out_dir is not None else folder
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HpctfError(f"--out={str(out)!r}: cannot make the folder ({err.strerror or err})") from None
    trials = complete_trials(folder, config)
    if not trials:
        raise HpctfError(f"the sweep in {folder} has no complete trial yet: nothing to plot (hpctf sweep status)")
    history = _save(plt, _history_figure(plt, config, trials), out / HISTORY_PNG)
    try:
        shares = _importances(folder, config, trials)
    except HpctfError as err:
        raise HpctfError(f"{err} (wrote {history} only)") from None
    return [history, _save(plt, _importance_figure(plt, config, shares, len(trials)), out / IMPORTANCE_PNG)]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise HpctfError(PLOT_NEEDS) from None
    matplotlib.use("Agg")  # no display on a login node
    import matplotlib.pyplot as plt

    return plt


def _history_figure(plt, config: SweepConfig, trials: list):
    numbers = [t.number for t in trials]
    values = [t.value for t in trials]
    better = max if config.goal == "max" else min
    so_far = [better(values[: i + 1]) for i in range(len(values))]
    best = next(t for t in trials if t.value == so_far[-1])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(numbers, values, s=28, color="#4c72b0", alpha=0.8, label=f"{config.metric} of a trial", zorder=3)
    ax.step(numbers, so_far, where="post", color="#dd8452", linewidth=2, label="best so far", zorder=2)
    ax.scatter(
        [best.number],
        [best.value],
        s=120,
        facecolors="none",
        edgecolors="#c44e52",
        linewidth=2,
        label=f"best: {best.value:.4g} (trial {best.number})",
        zorder=4,
    )
    goal = "maximize" if config.goal == "max" else "minimize"
    ax.set_title(f"Optimization history: {goal} {config.metric} ({len(trials)} complete trials)")
    ax.set_xlabel("trial")
    ax.set_ylabel(config.metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def _importance_figure(plt, config: SweepConfig, shares: dict[str, float], complete: int):
    names = list(shares)[::-1]  # barh draws bottom up: the most important on top
    values = [shares[n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.5 * len(names)))
    bars = ax.barh(names, values, color="#4c72b0", height=0.6)
    ax.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.01 else "<0.01" for v in values], padding=4, fontsize=9)
    goal = "maximize" if config.goal == "max" else "minimize"
    ax.set_title(f"Parameter importance: {goal} {config.metric} ({complete} complete trials)")
    ax.set_xlabel("share of the importance (PED-ANOVA)")
    ax.set_xlim(0, 1.12)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def _save(plt, fig, path: Path) -> Path:
    try:
        fig.tight_layout()
        from ..private import open_private

        with open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) as handle:  # owner-only, like the sweep
            fig.savefig(handle, dpi=DPI, format="png")
    except OSError as err:
        raise HpctfError(f"{path}: cannot write it ({err.strerror or err})") from None
    finally:
        plt.close(fig)
    return path
