"""``hpctf outputs``: what a run kept in its outputs folder (``$HPCTF_OUTPUT_DIR``), listed
as :mod:`hpctf.outputs` finds it, or copied out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import HpctfError
from .options import fail
from .runs import _lookup


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--copy",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DEST",
    help="copy the files into DEST, folders and all (made if missing)",
)
@click.option("--force", is_flag=True, help="with --copy: overwrite files already in DEST")
def outputs(job_id: str, as_json: bool, dest: Path | None, force: bool) -> None:
    """List the files a run kept in its outputs folder, or copy them out."""
    from ..outputs import list_files
    from ..runpaths import RunPaths

    if force and dest is None:
        fail("--force goes with --copy DEST")
    _, record = _lookup(job_id, anywhere=True)  # files in the shared home: any cluster's run
    folder = RunPaths.of(record).outputs
    files = list_files(folder)
    if dest is not None:
        _copy(record.job_id, folder, files, dest, force, as_json)
    elif as_json:
        click.echo(json.dumps({"job_id": record.job_id, "folder": str(folder), "files": [f.to_dict() for f in files]}))
    elif not files:
        click.echo(f"job {record.job_id} has no outputs: nothing in {folder}")
    else:
        from ..outputs import COLUMNS, rows, size_text
        from ..table import format_table

        click.echo(format_table(COLUMNS, rows(files)), nl=False)
        click.echo(f"{len(files)} file(s), {size_text(sum(f.size for f in files))}, in {folder}")


def _copy(job_id: str, folder: Path, files: list, dest: Path, force: bool, as_json: bool) -> None:
    """``--copy DEST``: copy, then say what was copied (one line a file, or JSON)."""
    from ..outputs import copy_files, size_text

    try:
        copied = copy_files(folder, files, dest, force=force)
    except HpctfError as err:  # files in the way: a refusal, as hpctf's others (exit 2)
        fail(str(err))
    except OSError as err:  # the copy itself failed (no space, no permission)
        fail(f"copying to {dest} failed: {err}", code=1)
    if as_json:
        click.echo(
            json.dumps({"job_id": job_id, "folder": str(folder), "dest": str(dest), "copied": list(map(str, copied))})
        )
        return
    if not files:
        click.echo(f"job {job_id} has no outputs: nothing in {folder}, nothing copied")
        return
    for path in copied:
        click.echo(str(path))
    click.echo(f"copied {len(copied)} file(s), {size_text(sum(f.size for f in files))}, from {folder} to {dest}")
