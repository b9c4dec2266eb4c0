"""``hpctf status``, ``logs``, ``cancel`` and ``ls``: the run history, as
:mod:`hpctf.runs` keeps it, printed."""

from __future__ import annotations

import dataclasses
import json

import click

from ..errors import HpctfError
from .options import fail


def _lookup(job_id: str, element_ok: bool | str = False, cluster: str | None = None, anywhere: bool = False):
    """(the run history, the run ``job_id``); exit 2 where there is no such run. With
    ``element_ok``, ``237_4`` is element 4 of sweep 237: its logs, its own cancel.
    ``cluster``: the run of that cluster (one home on several clusters); ``anywhere``: another
    cluster's run where this one has none (commands that read only the run's files)."""
    from ..clusters import OtherCluster
    from ..registry import Registry

    registry = Registry()
    try:
        return registry, registry.get(job_id, cluster=cluster, anywhere=anywhere)
    except OtherCluster as err:
        fail(str(err))
    except HpctfError as err:
        array, _, index = job_id.partition("_")
        if element_ok and index.isdigit():
            try:
                sweep = registry.get(array, cluster=cluster)
            except OtherCluster as other:
                fail(str(other))
            except HpctfError:
                sweep = None
            if sweep is not None and sweep.sweep and int(index) < (sweep.array_size or 0):
                from .. import executors

                if element_ok == "cancel" and not executors.for_record(sweep).cancels_elements:
                    fail(f"{job_id}: the {sweep.target} executor cancels a sweep whole: hpctf cancel {array}")
                return registry, dataclasses.replace(sweep, job_id=job_id, sweep=None)
        fail(str(err))


def _reachable(record) -> None:
    """Exit 2 where ``record``'s job is on a cluster this login node cannot ask."""
    from ..clusters import OtherCluster, require_reachable

    try:
        require_reachable(record)
    except OtherCluster as err:
        fail(str(err))


CLUSTER_HELP = "the run of this cluster, where one home holds runs of several (`hpctf ls` shows them)"


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--cluster", help=CLUSTER_HELP)
def status(job_id: str, as_json: bool, cluster: str | None) -> None:
    """State, exit code and placement of one run."""
    from ..runs import refresh, status_dict, status_rows

    registry, record = _lookup(job_id, cluster=cluster)
    refresh(registry, [record])
    if as_json:
        click.echo(json.dumps(status_dict(record)))
        return
    from ..table import format_table

    click.echo(format_table(None, status_rows(record)), nl=False)


@click.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="keep printing until the job ends")
@click.option("--task", type=int, default=0, show_default=True, help="task (rank) whose log to show")
@click.option("--err", is_flag=True, help="standard error instead of output")
@click.option("--cluster", help=CLUSTER_HELP)
def logs(job_id: str, follow: bool, task: int, err: bool, cluster: str | None) -> None:
    """Print a run's log (task 0's output by default)."""
    from ..runs import Watch, read_log

    stream = "err" if err else "out"
    registry, record = _lookup(job_id, element_ok=True, cluster=cluster)
    if not follow:
        try:
            click.echo(read_log(record, task, stream), nl=False)
        except HpctfError as error:
            fail(str(error))
        return
    _reachable(record)  # following asks its cluster until the job ends
    for chunk in Watch(record, registry).log(task, stream):
        click.echo(chunk, nl=False)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--cluster", help=CLUSTER_HELP)
def cancel(job_id: str, as_json: bool, cluster: str | None) -> None:
    """Cancel a run (every task of it)."""
    from ..runs import cancel as cancel_run

    registry, record = _lookup(job_id, element_ok="cancel", cluster=cluster)
    _reachable(record)
    try:
        cancel_run(record)
    except HpctfError as err:
        fail(str(err))
    click.echo(
        json.dumps({"job_id": record.job_id, "cancelled": True}) if as_json else f"cancelled job {record.job_id}"
    )


@click.command("ls")
@click.option("--json", "as_json", is_flag=True)
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="newest N runs (0: all)")
def list_runs(as_json: bool, limit: int) -> None:
    """Past and current runs, newest first."""
    from ..registry import Registry
    from ..runs import list_columns, list_rows, refresh

    registry = Registry()
    records = list(registry.runs(limit=limit or None, specs=False))
    refresh(registry, records)
    if as_json:
        # The full spec is in `hpctf status --json`; a listing of 10,000 runs stays small.
        click.echo(json.dumps([r.to_dict(with_spec=False) for r in records]))
        return
    from ..table import format_table

    several = len(registry.clusters()) > 1  # one home on several clusters: say whose each run is
    click.echo(format_table(list_columns(several), list_rows(records, several)), nl=False)
