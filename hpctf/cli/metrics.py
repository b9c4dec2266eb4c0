"""``hpctf metrics``: what runs logged (``hpctf.log_metric``, TensorBoard scalars), as a
table, a terminal chart, a PNG, JSON or CSV; with ``--follow``, redrawn until they end.
The reading and the text are :mod:`hpctf.metrics`'s."""

from __future__ import annotations

import shutil
import sys
import time

import click

from ..errors import HpctfError
from .options import fail

FOLLOW_POLL_S = 2.0
CLEAR_SCREEN = "\x1b[H\x1b[2J"


@click.command()
@click.argument("job_ids", metavar="JOB [JOB...]", nargs=-1, required=True)
@click.option(
    "--metric",
    "-m",
    "chosen",
    multiple=True,
    metavar="NAME",
    help="metric to chart (repeatable) [default: loss, else the first logged]",
)
@click.option(
    "--goal",
    "goal_items",
    multiple=True,
    metavar="NAME=min|max",
    help="whether NAME is best low or high (repeatable) [default: guessed from the name]",
)
@click.option("--json", "as_json", is_flag=True, help="every point as JSON (job, name, step, value, rank, time)")
@click.option("--csv", "as_csv", is_flag=True, help="every point as CSV, same columns")
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE.png",
    help="write the chart to a PNG (needs matplotlib: pip install 'hpctf[plot]')",
)
@click.option("--chart/--no-chart", default=None, help="chart in the terminal [default: when stdout is a terminal]")
@click.option("--follow", "-f", is_flag=True, help="redraw every few seconds until the jobs end (Ctrl-C stops)")
def metrics(
    job_ids: tuple[str, ...],
    chosen: tuple[str, ...],
    goal_items: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
    plot_file: str | None,
    chart: bool | None,
    follow: bool,
) -> None:
    """What runs logged: last, best and count per metric, several runs side by side.

    A run that logged nothing yet gets a line saying where hpctf looked; that is not an
    error (exit 0). Bad input exits 2.
    """
    from ..metrics.summary import parse_goals

    try:
        goals = parse_goals(goal_items)
    except ValueError as err:
        fail(str(err))
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    if follow and (as_json or as_csv or plot_file):
        fail("--follow redraws the table and chart: it takes no --json, --csv or --plot")
    registry, records = _lookup(job_ids)
    view = _View(goals, chosen, plot_file, sys.stdout.isatty() if chart is None else chart)
    if follow:
        _follow(registry, records, view)
    elif as_json or as_csv:
        from ..metrics import report

        runs = _read(records)
        click.echo(report.as_json(runs) if as_json else report.as_csv(runs), nl=as_json)
    else:
        out, notes = view.draw(_read(records))
        click.echo(out, nl=False)
        for note in notes:
            click.echo(f"note: {note}", err=True)


def _lookup(job_ids: tuple[str, ...]):
    """(the run history, the runs ``job_ids`` name, each once); exit 2 for an unknown one."""
    from ..registry import Registry

    try:
        registry = Registry()
        # Metrics are files in the run folder: another cluster's run (shared home) is read too.
        return registry, [registry.get(job_id, anywhere=True) for job_id in dict.fromkeys(job_ids)]
    except HpctfError as err:
        fail(str(err))


def _read(records) -> list:
    from ..metrics import read_run

    return [(r.job_id, read_run(r.run_dir)) for r in records]


class _View:
    """The table, the terminal chart and the PNG, as one command line asked for them."""

    def __init__(self, goals: dict[str, str], chosen: tuple[str, ...], plot_file: str | None, chart: bool):
        self.goals, self.chosen, self.plot_file, self.chart = goals, list(chosen), plot_file, chart

    def draw(self, runs: list) -> tuple[str, list[str]]:
        """(what stdout gets, notes for stderr). Exit 2 for a --metric no run logged, or a
        PNG that cannot be written."""
        from ..metrics import report
        from ..table import format_table

        parts = [report.nothing_logged(job, run) + "\n" for job, run in runs if not run.series]
        header, rows = report.table(runs, self.goals)
        if rows:
            parts.append(format_table(header, rows))
        names = self._charted(runs)
        if names and self.chart:
            parts.append(self._terminal(runs, names))
        if names and self.plot_file:
            parts.append(self._png(runs, names))
        return "".join(parts), [note for _, run in runs for note in run.notes]

    def _charted(self, runs: list) -> list[str]:
        from ..metrics.charts import default_metric

        if not self.chosen:
            return default_metric(runs)
        logged = list(dict.fromkeys(name for _, run in runs for name in run.names()))
        missing = [name for name in self.chosen if name not in logged]
        if missing and logged:
            shown = ", ".join(repr(n) for n in logged[:20]) + (", ..." if len(logged) > 20 else "")
            fail(f"--metric={missing[0]!r}: no run logged it; logged: {shown}")
        return [name for name in self.chosen if name in logged]

    def _terminal(self, runs: list, names: list[str]) -> str:
        from ..metrics.charts import terminal_chart

        width = min(160, shutil.get_terminal_size((100, 24)).columns)
        return terminal_chart(runs, names, width, color=sys.stdout.isatty()).rstrip("\n") + "\n"

    def _png(self, runs: list, names: list[str]) -> str:
        from pathlib import Path

        from ..metrics.charts import write_png

        try:
            write_png(runs, names, Path(self.plot_file))
        except HpctfError as err:
            fail(str(err))
        return f"wrote {self.plot_file}\n"


def _follow(registry, records, view: _View) -> None:
    """Redraw until every run has ended (one scheduler call a refresh); Ctrl-C stops,
    leaving the last picture, exit 0."""
    from ..runs import refresh
    from ..states import JobState

    terminal = sys.stdout.isatty()
    shown = None
    try:
        while True:
            refresh(registry, records)
            ended = all(JobState.from_slurm(r.state).finished for r in records)
            out, notes = view.draw(_read(records))
            states = "  ".join(f"job {r.job_id} {r.state}" for r in records)
            page = f"{states}  ({time.strftime('%H:%M:%S')})\n{out}" + "".join(f"note: {n}\n" for n in notes)
            if terminal:
                click.echo(CLEAR_SCREEN + page, nl=False)
            elif (states, out) != shown:  # a log file gets each change once
                click.echo(page, nl=False)
            shown = (states, out)
            if ended:
                return
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        click.echo("", err=True)
