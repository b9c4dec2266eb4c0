"""``hpctf doctor``: the preflight, with the job options of ``submit`` (the shape)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from .options import JOB_OPTIONS, param_of, spec_from_options, template_dirs, user_errors

# The doctor brings its own code (hpctf/job/probe.py): the options about the code do not apply.
DOCTOR_SKIPS = ("entry_script", "script_args", "source_dir", "log_dir")


def doctor_options(command: Callable) -> Callable:
    """The job options of `submit` (the shape), less those about the code."""
    for option in reversed(JOB_OPTIONS):
        if param_of(option).name not in DOCTOR_SKIPS:
            command = option(command)
    return command


@click.command()
@doctor_options
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option(
    "--timeout",
    type=float,
    default=600,
    show_default=True,
    help="seconds to wait for the doctor job(s), queueing included",
)
@click.option(
    "--other-launcher/--no-other-launcher",
    default=True,
    show_default=True,
    help="mpi backend: also try the launcher the job does not use",
)
def doctor(as_json: bool, timeout: float, other_launcher: bool, **options: Any) -> None:
    """Preflight: run a small job of this shape and check what distributed training needs.

    Exit code 0 when every check passes (warnings allowed), 1 when one fails.
    """
    from .. import doctor as preflight

    with user_errors(), preflight.probe_folder() as source:
        options.update(entry_script=preflight.PROBE_NAME, source_dir=source, script_args=(), log_dir=None)
        spec = spec_from_options(options)
        say = None if as_json else (lambda message: click.echo(f"hpctf doctor: {message}", err=True))
        result = preflight.run(
            spec,
            template_dirs=template_dirs(options),
            other_launcher=other_launcher,
            timeout_s=timeout,
            progress=say,
            source=source,
        )
    click.echo(json.dumps(result.to_dict()) if as_json else preflight.format_report(result), nl=as_json)
    sys.exit(0 if result.ok else 1)
