"""The ``hpctf`` command.

Options before the entry script belong to hpctf; everything after it goes to the script,
as with ``srun`` and ``mpirun``::

    hpctf render --backend mpi --nodes 2 --procs-per-node 4 train.py --epochs 3

Only jinja2 and click are imported to render; submitit, TensorFlow and Horovod never are.
The commands parse and print: one module a family (jobs: render, tf-config, submit; runs:
status, logs, cancel, ls; sweep; metrics; outputs; tensorboard; doctor; targets), the options
they share in :mod:`.options`, the run history (waiting, logs, status rows) in
:mod:`hpctf.runs`.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

__all__ = ["cli", "main"]

# Each command's module and its one-line help. A module is imported when its command runs:
# `hpctf ls` does not load the code of render, submit or the doctor, and `hpctf --help`
# lists the commands from this table without importing any (tests/test_cli.py checks the
# lines against the commands' own help).
COMMANDS = {
    "cancel": (".runs", "cancel", "Cancel a run (every task of it)."),
    "doctor": (
        ".doctor",
        "doctor",
        "Preflight: run a small job of this shape and check what distributed training needs.",
    ),
    "logs": (".runs", "logs", "Print a run's log (task 0's output by default)."),
    "ls": (".runs", "list_runs", "Past and current runs, newest first."),
    "metrics": (".metrics", "metrics", "What runs logged: last, best and count per metric, several runs side by side."),
    "outputs": (".outputs", "outputs", "List the files a run kept in its outputs folder, or copy them out."),
    "render": (".jobs", "render", "Print the sbatch script for ENTRY_SCRIPT [SCRIPT_ARGS]..."),
    "status": (".runs", "status", "State, exit code and placement of one run."),
    "sweep": (".sweep", "sweep", "Hyperparameter sweeps: one Slurm job array, one element a trial."),
    "submit": (".jobs", "submit", "Snapshot the code and submit ENTRY_SCRIPT [SCRIPT_ARGS]... to Slurm."),
    "targets": (".targets", "targets", "List the compute targets (site profiles) jobs can name with --target."),
    "tensorboard": (
        ".tensorboard",
        "tensorboard",
        "Serve TensorBoard over runs' event files (the newest 10 without JOB).",
    ),
    "tf-config": (".jobs", "tf_config", "Print this Slurm task's TF_CONFIG, derived from the job's node list."),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module, __name__), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their one-line help, as click lists them, from :data:`COMMANDS`."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))  # as click.Group.format_commands
        # A bare Command shortens the help as the real one would (click's own rule).
        rows = [(name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpctf")
def cli() -> None:
    """Train TensorFlow on Slurm: render, submit and track estimator jobs."""


def main() -> None:
    cli(prog_name="hpctf")
