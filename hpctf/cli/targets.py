"""``hpctf targets`` and ``targets check``: the compute targets (site profiles)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import HpctfError
from .options import fail


def _load_targets():
    from ..targets import load_config

    try:
        return load_config()
    except HpctfError as err:
        fail(str(err))


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def targets(ctx: click.Context, as_json: bool) -> None:
    """List the compute targets (site profiles) jobs can name with --target."""
    if ctx.invoked_subcommand is not None:
        return
    from ..targets import get_target, user_config_file

    config = _load_targets()
    default = get_target(None, config).name
    if as_json:
        click.echo(
            json.dumps(
                {
                    "default": default,
                    "files": [str(f) for f in config.files],
                    "targets": [t.describe() for t in config.targets.values()],
                }
            )
        )
        return
    from ..table import format_table

    rows = [_target_row(t, default) for t in config.targets.values()]
    click.echo(
        format_table(("", "TARGET", "RUNS ON", "PARTITION", "GPUS", "TIME", "ENVIRONMENT", "DEFINED IN"), rows),
        nl=False,
    )
    if not config.files:
        click.echo(f"(only the built-in targets: define your own in {user_config_file()} or ./hpctf.toml)")


def _target_row(t, default: str) -> tuple[str, ...]:
    """A target's row: its GPUs as gres (``gpu:a100:4``), its environment in a few words."""
    gpus = (
        ":".join(
            [
                t.gres_name,
                *([t.gpu_type] if t.gpu_type else []),
                *([str(t.gpus_per_node)] if t.gpus_per_node else []),
            ]
        )
        if (t.gpu_type or t.gpus_per_node)
        else ""
    )
    extra = ", ".join(
        filter(
            None,
            [
                f"modules {' '.join(t.modules)}" if t.modules else "",
                f"{t.container_runtime or 'apptainer'} {t.container_image}"
                if t.container_image
                else (t.container_runtime or ""),
                f"env cache {t.env_cache}" if t.env_cache else "",
            ],
        )
    )
    mark = "*" if t.name == default else ""
    return (mark, t.name, t.executor, t.partition or "", gpus, t.time or "", extra, t.source)


@targets.command("check")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def targets_check(name: str | None, as_json: bool) -> None:
    """Compare target NAME (default: the default target) with the live cluster."""
    from ..executors import MISMATCH, check_target
    from ..targets import get_target

    config = _load_targets()
    try:
        target = get_target(name, config)
    except HpctfError as err:
        fail(str(err))
    findings = check_target(target)
    bad = [f for f in findings if f.status == MISMATCH]
    if as_json:
        click.echo(json.dumps({"target": target.name, "ok": not bad, "findings": [f.to_dict() for f in findings]}))
    else:
        from ..table import format_table

        click.echo(f"target {target.name} ({target.source})")
        click.echo(
            format_table(("CHECK", "STATUS", "DETAIL"), [(f.check, f.status, f.detail) for f in findings]), nl=False
        )
        click.echo(f"{len(bad)} mismatch(es)" if bad else "the cluster matches the profile")
    sys.exit(1 if bad else 0)
