"""``hpctf tensorboard``: TensorBoard over runs' event folders, chosen and named by
:mod:`hpctf.tensorboard`, served by :mod:`hpctf.serve`.

Exit codes: 2 for what the command line asks that cannot be (an unknown job, as every
hpctf command), 1 for what this machine lacks or what fails while serving (TensorBoard not
installed, TensorBoard dying): the same command may work elsewhere or later. 0 once
stopped with Ctrl-C (or SIGTERM): that is how a server is meant to end.
"""

from __future__ import annotations

import shlex

import click

from .. import tensorboard as board
from ..errors import HpctfError
from .options import fail

EXIT_FAILED = 1


@click.command()
@click.argument("jobs", nargs=-1, metavar="[JOB]...")
@click.option(
    "-n",
    "--last",
    type=int,
    default=board.LAST_RUNS,
    show_default=True,
    metavar="N",
    help="without JOB: the newest N runs (0: all)",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, metavar="PORT", help="on 127.0.0.1  [default: a free one]"
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0),
    default=board.RELOAD_S,
    show_default=True,
    metavar="SECONDS",
    help="how often TensorBoard looks for new events",
)
@click.option("--print-command", is_flag=True, help="print the TensorBoard command instead of running it")
def tensorboard(jobs: tuple[str, ...], last: int, port: int | None, reload_interval: float, print_command: bool):
    """Serve TensorBoard over runs' event files (the newest 10 without JOB)."""
    from ..registry import Registry

    try:
        runs = board.board_runs(board.select(Registry(), jobs, last))
        program = board.find_tensorboard()
        if program is None:
            fail(board.INSTALL_HINT, EXIT_FAILED)
        from ..serve import free_port

        port = port or free_port()
        argv = board.command(program, runs, port, reload_interval)
    except HpctfError as err:
        fail(str(err))
    _warn_empty(runs)
    if print_command:
        click.echo(shlex.join(argv))
        return
    click.echo(f"{len(runs)} run(s): {', '.join(run.name for run in runs)}")
    from ..serve import serve

    code, problem = serve(argv, port, click.echo, "TensorBoard", board.READY_PATH, board.environment())
    if problem:
        fail(problem, code)


def _warn_empty(runs) -> None:
    """Runs with no event files yet: served all the same, since TensorBoard picks files up
    as they appear, but the user should know why the board is empty."""
    for run in runs:
        if not run.events:
            click.echo(
                f"hpctf: job {run.job_id} has no event files yet in {run.folder}; "
                "TensorBoard shows them once the job writes some ($HPCTF_TENSORBOARD_DIR)",
                err=True,
            )
