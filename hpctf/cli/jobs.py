"""``hpctf render``, ``tf-config`` and ``submit``: a job from the command line, as a
script or submitted (and, with ``--wait``, followed until it ends)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from .options import SCRIPT_STYLE, fail, job_options, spec_from_options, template_dirs, user_errors


@click.command(context_settings=SCRIPT_STYLE)
@job_options
@click.option(
    "--output",
    "-o",
    "output_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="write the script to FILE instead of stdout",
)
def render(output_file: str | None, **options: Any) -> None:
    """Print the sbatch script for ENTRY_SCRIPT [SCRIPT_ARGS]..."""
    from ..render import JobPaths, render_script

    with user_errors():
        spec = spec_from_options(options)
        paths = JobPaths.for_spec(spec, options["log_dir"])
        script = render_script(spec, paths, template_dirs=template_dirs(options))
    if output_file:
        from ..private import open_private

        # Like everything hpctf writes, the owner's alone (a new or emptied file).
        with open_private(output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700) as handle:
            handle.write(script.encode())
        click.echo(f"wrote {output_file}", err=True)
    else:
        click.echo(script, nl=False)
    if not paths.log_dir.is_dir():
        click.echo(f"note: the job writes its logs to {paths.log_dir}: create it before sbatch (mkdir -p)", err=True)


@click.command("tf-config")
@click.option("--ps", type=int, default=1, show_default=True, help="parameter servers (0: workers only)")
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--chief", is_flag=True, default=False)
@click.option(
    "--port-base",
    type=int,
    default=None,
    help="task i listens on PORT+i [default: a range of the job's own, from SLURM_JOB_ID]",
)
@click.option("--indent", type=int, default=None, help="pretty-print with this indent")
def tf_config(ps: int, workers: int, chief: bool, port_base: int | None, indent: int | None) -> None:
    """Print this Slurm task's TF_CONFIG, derived from the job's node list.

    Run it inside a job step (srun), e.g. in your own sbatch script:

        srun bash -c 'TF_CONFIG=$(hpctf tf-config --ps 1 --workers 2) python train.py'
    """
    from ..job.layout import tf_config_for_task
    from ..job.taskenv import RuntimeSetupError

    if ps < 0 or workers < 1:
        fail(f"--ps={ps} --workers={workers}: need --ps >= 0 and --workers >= 1")
    try:
        config = tf_config_for_task(os.environ, ps, workers, chief, port_base)
    except (RuntimeSetupError, ValueError) as err:
        fail(str(err))
    click.echo(json.dumps(config, indent=indent))


@click.command(context_settings=SCRIPT_STYLE)
@job_options
@click.option("--wait", is_flag=True, help="follow the job until it ends; exit with its exit code")
@click.option("--json", "as_json", is_flag=True, help="print the submission as JSON")
@click.option("--dry-run", is_flag=True, help="show what would be submitted; submit nothing")
@click.option(
    "--snapshot-limit-mb",
    type=float,
    default=None,
    help="largest code snapshot [default: 300, or $HPCTF_SNAPSHOT_LIMIT_MB]",
)
def submit(wait: bool, as_json: bool, dry_run: bool, snapshot_limit_mb: float | None, **options: Any) -> None:
    """Snapshot the code and submit ENTRY_SCRIPT [SCRIPT_ARGS]... to Slurm."""
    from .. import executors, submission

    with user_errors():
        spec = spec_from_options(options)
        the_plan = submission.plan(spec, template_dirs=template_dirs(options), snapshot_limit_mb=snapshot_limit_mb)
        if dry_run:
            _print_dry_run(the_plan, as_json)
            return
        record = submission.schedule(the_plan)
    if as_json:
        click.echo(json.dumps(record.to_dict()))
    else:
        where = " on this machine" if executors.for_record(record).runs_here else ""
        click.echo(f"Submitted job {record.job_id}{where} ({record.name}: {record.backend}, {record.shape})")
        click.echo(f"  run dir  {record.run_dir}")
        click.echo(f"  follow   hpctf logs {record.job_id} --follow")
        click.echo(f"  status   hpctf status {record.job_id}")
    if wait:
        sys.exit(_wait_and_stream(record, quiet=as_json))


def _print_dry_run(the_plan, as_json: bool) -> None:
    info = the_plan.describe()
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"# dry run: would run `{info['command']}` with the script below", err=True)
    click.echo(
        f"# code snapshot {info['snapshot']['digest']}: "
        f"{info['snapshot']['files']} files, {info['snapshot']['bytes']} bytes",
        err=True,
    )
    click.echo(the_plan.script, nl=False)


def _wait_and_stream(record, quiet: bool = False) -> int:
    """Spinner while pending, task 0's log while running; the job's exit code."""
    from rich.console import Console

    from ..runs import Watch

    watch = Watch(record)
    console = Console(stderr=True)
    with console.status(f"job {record.job_id}: waiting in the queue", spinner="dots") as spinner:
        shown = None

        def show(now: tuple) -> None:
            nonlocal shown
            if console.is_terminal:
                spinner.update(_pending_text(record.job_id, *now))  # the countdown ticks
            elif now != shown:  # a log file gets each new reason once
                console.print(_pending_text(record.job_id, *now), highlight=False)
            shown = now

        watch.queue(show)
    metrics = _MetricsLine(record, console)
    if not quiet:
        for chunk in watch.log(tick=metrics.tick):
            click.echo(chunk, nl=False)
    code = watch.end(tick=metrics.requeue if quiet else None)  # --json: no log, still a requeue's line
    if not quiet:
        metrics.tick(final=True)
    from ..runs import end_text

    text = end_text(record)
    if record.exit_code is None:  # no exit code of its own: Slurm ended it
        text = f"{text[:-1]}; hpctf exits {code})"
    console.print(f"job {record.job_id} {record.state} {text}", highlight=False)
    return code


class _MetricsLine:
    """Rank 0's latest metrics while the job runs, on stderr beside its log: a line when
    they change, at most one every :attr:`EVERY_S` (and the last values once it ends);
    and a line when Slurm requeues the job after a node failure."""

    EVERY_S = 10.0

    def __init__(self, record, console):
        self.record, self.console = record, console
        self.shown: str | None = None
        self.requeue_shown: str | None = None
        self.at = -self.EVERY_S

    def tick(self, final: bool = False) -> None:
        from ..metrics.latest import latest_text

        self.requeue()  # reads a file only once Slurm has requeued the job
        if not final and time.monotonic() - self.at < self.EVERY_S:
            return
        text = latest_text(self.record.run_dir)
        if text:  # once there are metrics, their file's tail is read every EVERY_S at most
            self.at = time.monotonic()
        if text and text != self.shown:
            self.console.print(f"job {self.record.job_id}: {text}", highlight=False, markup=False)
            self.shown = text

    def requeue(self) -> None:
        """A line once per requeue after a node failure: 'job 7 PENDING (requeued after
        node node2 failed; attempt 2)'."""
        from ..runs import state_detail

        detail = state_detail(self.record)
        if detail and detail != self.requeue_shown:
            self.console.print(f"job {self.record.job_id} {self.record.state} ({detail})", highlight=False)
            self.requeue_shown = detail


def _pending_text(job_id: str, state: str, reason: str | None, expected_start: float | None) -> str:
    """'job 42: pending (Resources), expected to start at 12:30:00 (in 5:00)'."""
    from ..table import duration

    message = f"job {job_id}: {state}" + (f" ({reason})" if reason else "")
    if expected_start is not None:
        wait_s = max(0, expected_start - time.time())
        when = time.strftime("%H:%M:%S" if wait_s < 86400 else "%Y-%m-%d %H:%M", time.localtime(expected_start))
        message += f", expected to start at {when} (in {duration(wait_s)})"
    return message
