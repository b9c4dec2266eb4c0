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

import click

from .. import __version__
from .doctor import doctor
from .jobs import render, submit, tf_config
from .options import EXIT_USAGE, JOB_OPTIONS, fail, job_options, spec_from_options, user_errors
from .runs import cancel, list_runs, logs, status
from .targets import targets

__all__ = ["EXIT_USAGE", "JOB_OPTIONS", "cli", "fail", "job_options", "main", "spec_from_options", "user_errors"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpctf")
def cli() -> None:
    """Train TensorFlow on Slurm: render, submit and track estimator jobs."""


for _command in (render, tf_config, submit, status, logs, cancel, list_runs, doctor, targets):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="hpctf")
