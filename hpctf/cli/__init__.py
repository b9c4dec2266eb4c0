"""The ``hpctf`` command.

Options before the entry script belong to hpctf; everything after it goes to the script,
as with ``srun`` and ``mpirun``::

    hpctf render --backend mpi --nodes 2 --procs-per-node 4 train.py --epochs 3

Only jinja2 and click are imported to render; submitit, TensorFlow and Horovod never are.
The commands parse and print: one module a family (jobs: render, tf-config, submit; runs:
status, logs, cancel, ls; doctor; targets), the options they share in :mod:`.options`, the
run history (waiting, logs, status rows) in :mod:`hpctf.runs`.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

__all__ = ["cli", "main"]

# Each command's module, imported when that command runs (or when --help lists them all):
# `hpctf ls` does not load the code of render, submit or the doctor, and each command's
# start stays what it was when the CLI was one module.
COMMANDS = {
    "cancel": (".runs", "cancel"),
    "doctor": (".doctor", "doctor"),
    "logs": (".runs", "logs"),
    "ls": (".runs", "list_runs"),
    "render": (".jobs", "render"),
    "status": (".runs", "status"),
    "submit": (".jobs", "submit"),
    "targets": (".targets", "targets"),
    "tf-config": (".jobs", "tf_config"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module, __name__), name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpctf")
def cli() -> None:
    """Train TensorFlow on Slurm: render, submit and track estimator jobs."""


def main() -> None:
    cli(prog_name="hpctf")
