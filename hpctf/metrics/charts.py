"""Metrics over steps as pictures: a chart in the terminal (plotext, a dependency: pure
Python, ~1 MB, ~30 ms to import) and a PNG (matplotlib, the optional extra ``plot``).

A series is thinned to what a picture can show (a terminal is ~200 columns wide; a PNG
~2,000 pixels): every k-th point, the last one always. NaN and infinite values are left
out of pictures (the table counts them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..errors import HpctfError
from .series import RunMetrics, Series

TERMINAL_POINTS = 1000
PNG_POINTS = 5000
PLOT_HINT = "pip install 'hpctf[plot]' (or: pip install matplotlib)"


def default_metric(runs: Sequence[tuple[str, RunMetrics]]) -> list[str]:
    """What to chart when not told: ``loss`` where a run logged it, else the first name logged."""
    names = [name for _, run in runs for name in run.names()]
    if "loss" in names:
        return ["loss"]
    return names[:1]


def thin(series: Series, limit: int) -> tuple[list[int], list[float]]:
    """At most ``limit`` finite points of ``series``: every k-th, and the last."""
    points = [(s, v) for s, v in zip(series.steps, series.values) if math.isfinite(v)]
    if len(points) > limit:
        k = math.ceil(len(points) / limit)
        points = points[::k] + ([points[-1]] if (len(points) - 1) % k else [])
    return [s for s, _ in points], [v for _, v in points]


def lines(runs: Sequence[tuple[str, RunMetrics]], name: str, limit: int):
    """(legend label, steps, values) for every series called ``name``."""
    several = len(runs) > 1
    for job, run in runs:
        for s in run.series:
            if s.name == name:
                rank = "" if s.rank in (0, None) else f" rank {s.rank}"
                yield (f"job {job}" if several else name) + rank, *thin(s, limit)


def terminal_chart(runs: Sequence[tuple[str, RunMetrics]], names: Sequence[str], width: int, color: bool) -> str:
    """One chart per name, ``width`` columns wide, as text (ANSI colours if ``color``)."""
    import plotext as plt

    out = []
    for name in names:
        plt.clear_figure()
        for label, xs, ys in lines(runs, name, TERMINAL_POINTS):
            if xs:
                plt.plot(xs, ys, label=label)
        plt.title(name)
        plt.xlabel("step")
        plt.plotsize(width, max(12, min(25, width // 4)))
        chart = plt.build()
        out.append(chart if color else plt.uncolorize(chart))
    plt.clear_figure()
    return "\n".join(out)


def write_png(runs: Sequence[tuple[str, RunMetrics]], names: Sequence[str], path: Path) -> None:
    """One panel per name, one line per run, saved to ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise HpctfError(f"--plot needs matplotlib, which is not installed: {PLOT_HINT}") from None
    matplotlib.use("Agg")  # no display on a login node
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(8, 3 * len(names)), squeeze=False)
    try:
        for ax, name in zip(axes[:, 0], names):
            for label, xs, ys in lines(runs, name, PNG_POINTS):
                ax.plot(xs, ys, label=label)
            ax.set_title(name)
            ax.set_xlabel("step")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    except OSError as err:
        raise HpctfError(f"--plot={str(path)!r}: cannot write it ({err.strerror or err})") from None
    finally:
        plt.close(fig)
