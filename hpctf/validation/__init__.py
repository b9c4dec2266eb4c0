"""Validation of the estimator: every rule adds a Problem; all are reported together.

One module an area (the order here is the order problems are reported in): the code to
run, the job's shape, the Slurm fields, the tasks' environment, containers, requeue, and
text UTF-8 cannot write. :mod:`.checks` holds the collector they share, and
:mod:`.normalise` turns the forms users pass into the one the checks read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Problem
from .checks import Checks
from .container import check_container
from .encoding import check_encoding
from .environment import check_environment
from .program import check_program
from .requeue import check_requeue
from .shape import check_shape
from .slurm import check_slurm

if TYPE_CHECKING:
    from ..spec import TensorFlow


def validate(spec: TensorFlow) -> list[Problem]:
    c = Checks()
    check_program(c, spec)
    check_shape(c, spec)
    check_slurm(c, spec)
    check_environment(c, spec)
    check_container(c, spec)
    check_requeue(c, spec)
    check_encoding(c, spec)
    return c.problems
