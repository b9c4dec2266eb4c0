"""``hpctf sweep``: submit a hyperparameter sweep (one job array), and follow it.

::

    hpctf sweep [JOB OPTIONS] --param 'lr=loguniform(1e-4,1e-1)' --metric val_loss \\
        --trials 12 --parallel 3 train.py --epochs 5
    hpctf sweep status JOB      every trial, best first
    hpctf sweep best JOB        the best trial: parameters, value, its folder and outputs
    hpctf sweep plot JOB        optimization history and parameter importance (PNG)

``hpctf sweep submit ...`` is the first form spelt out (for an entry script called
``status``, say).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import HpctfError
from .options import SCRIPT_STYLE, fail, job_options, spec_from_options, template_dirs, user_errors


class SweepGroup(click.Group):
    """``hpctf sweep ARGS``: a subcommand when ARGS starts with one, else ``submit``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["submit", *args]
        return super().parse_args(ctx, args)


@click.group(cls=SweepGroup)
def sweep() -> None:
    """Hyperparameter sweeps: one Slurm job array, one element a trial."""


SWEEP_OPTIONS = [
    click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=DIST(ARGS)",
        help=(
            "a parameter the entry script gets as --NAME VALUE: choice(a,b,...), uniform(lo,hi), "
            "loguniform(lo,hi), quniform(lo,hi,q), randint(n), normal(mu,sigma) (repeatable)"
        ),
    ),
    click.option(
        "--space",
        "space_file",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="a TOML file: a [params] table, and any of metric, goal, trials, parallel, sampler, early_stop, seed",
    ),
    click.option("--metric", default=None, help="the metric the entry script logs (hpctf.log_metric or TensorBoard)"),
    click.option("--goal", type=click.Choice(["min", "max"]), default=None, help="[default: min]"),
    click.option("--trials", type=int, default=None, help="trials to run [default: a grid's size]"),
    click.option(
        "--parallel",
        type=int,
        default=None,
        help="trials at once (--array=...%%N) [default: Slurm: no limit; the local target: 1]",
    ),
    click.option("--sampler", type=click.Choice(["grid", "random", "tpe"]), default=None, help="[default: random]"),
    click.option(
        "--early-stop",
        type=click.Choice(["none", "median", "hyperband"]),
        default=None,
        help="stop trials that fall behind, from the values they log [default: none]",
    ),
    click.option("--seed", type=int, default=None, help="the sampler's seed [default: 0]"),
    click.option("--storage", default=None, help="a database URL for the study [default: a file in the sweep folder]"),
]


SWEEP_NAMES = ("params", "space_file", "metric", "goal", "trials", "parallel", "sampler", "early_stop", "seed")
SWEEP_NAMES += ("storage",)


def sweep_options(command):
    for option in reversed(SWEEP_OPTIONS):
        command = option(command)
    return command


def sweep_config(options: dict[str, Any]):
    """The :class:`~hpctf.sweep.config.SweepConfig` the options (and --space file) describe."""
    from ..sweep.config import SweepConfig
    from ..sweep.handle import load_space_file
    from ..sweep.space import parse_space

    table, settings = load_space_file(options["space_file"]) if options["space_file"] else ({}, {})
    for name in ("metric", "goal", "trials", "parallel", "sampler", "early_stop", "seed", "storage"):
        if options[name] is not None:
            settings[name] = options[name]
    params = tuple(str(p) for p in parse_space(list(options["params"]), table))
    if "metric" not in settings:
        raise HpctfError("a sweep needs --metric NAME: the metric the entry script logs, which the study optimises")
    return SweepConfig(params=params, **settings).checked()


@sweep.command(context_settings=SCRIPT_STYLE)
@sweep_options
@job_options
@click.option("--json", "as_json", is_flag=True, help="print the submission as JSON")
@click.option("--dry-run", is_flag=True, help="show the job array's script; submit nothing")
def submit(as_json: bool, dry_run: bool, **options: Any) -> None:
    """Submit a sweep of ENTRY_SCRIPT [SCRIPT_ARGS]... over the --param space."""
    from .. import submission

    sweep_options = {k: options.pop(k) for k in list(options) if k in SWEEP_NAMES}
    with user_errors():
        config = sweep_config(sweep_options)
        spec = spec_from_options(options)
        plan = submission.plan(spec, template_dirs=template_dirs(options), sweep=config)
        if dry_run:
            info = plan.describe()
            if as_json:
                click.echo(json.dumps(info))
            else:
                click.echo(f"# dry run: would run `{info['command']}` with the script below", err=True)
                click.echo(plan.script, nl=False)
            return
        record = submission.schedule(plan)
    if as_json:
        click.echo(json.dumps(record.to_dict()))
        return
    config = plan.sweep
    click.echo(f"Submitted sweep {record.job_id} ({record.name}: {config.trials} trials of {record.backend})")
    click.echo(f"  sweep dir  {record.run_dir}")
    click.echo(f"  status     hpctf sweep status {record.job_id}")
    click.echo(f"  best       hpctf sweep best {record.job_id}")


def _sweep_run(job_id: str):
    from ..registry import Registry
    from ..sweep.handle import SweepRun

    registry = Registry()
    try:
        return SweepRun(registry.get(job_id), registry)
    except HpctfError as err:
        fail(str(err))


def _value(value) -> str:
    """A cell: numbers to 6 significant digits, a choice's string as it is."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


@sweep.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def status(job_id: str, as_json: bool) -> None:
    """Every trial of a sweep, best first: state, parameters, metric, duration."""
    from ..sweep.report import counts
    from ..table import duration, format_table

    run = _sweep_run(job_id)
    with user_errors():
        rows = run.trials()
    if as_json:
        click.echo(json.dumps({"job_id": run.job_id, "state": run.record.state, "trials": [r.to_dict() for r in rows]}))
        return
    config = run.config
    tally = ", ".join(f"{n} {state.lower()}" for state, n in counts(rows).items())
    click.echo(
        f"sweep {run.job_id} {run.record.state}: {config.sampler} search, {config.goal} {config.metric}; {tally}"
    )
    names = [p.name for p in config.space]
    header = ["TRIAL", "STATE", *[n.upper().lstrip("-") for n in names], config.metric.upper(), "DURATION"]
    table = [
        [r.job_id, r.state, *[_value(r.params[n]) if n in r.params else "" for n in names], _value(r.value)]
        + [duration(r.duration)]
        for r in rows
    ]
    click.echo(format_table(header, table), nl=False)


@sweep.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def best(job_id: str, as_json: bool) -> None:
    """The best trial so far: its parameters, value, folder and kept outputs."""
    from ..outputs import list_files
    from ..runpaths import RunPaths

    run = _sweep_run(job_id)
    with user_errors():
        found = run.best()
    if found is None:
        fail(f"sweep {job_id}: no trial has completed yet (hpctf sweep status {job_id})", code=1)
    outputs = [f.path for f in list_files(RunPaths(Path(found.run_dir)).outputs)]
    if as_json:
        click.echo(json.dumps({**found.to_dict(), "metric": run.config.metric, "outputs": outputs}))
        return
    from ..table import format_table

    rows = [("trial", found.job_id), (run.config.metric, _value(found.value))]
    rows += [(name, _value(value)) for name, value in found.params.items()]
    rows += [("folder", found.run_dir), ("outputs", ", ".join(outputs) or "(none)")]
    click.echo(format_table(None, rows), nl=False)


@sweep.command()
@click.argument("job_id")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="the folder to write the PNGs into [default: the sweep folder]",
)
def plot(job_id: str, out_dir: str | None) -> None:
    """Optimization history and parameter importance as PNGs (needs matplotlib: pip install 'hpctf[plot]')."""
    run = _sweep_run(job_id)
    with user_errors():
        paths = run.plot(out_dir)
    for path in paths:
        click.echo(str(path))
