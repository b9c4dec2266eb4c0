"""hpctf: the TensorFlow estimator for Slurm.

Describe a training job once (``hpctf.TensorFlow(...)``); hpctf renders it into a plain
sbatch script, starts one process, Horovod over Open MPI, or parameter-server tasks with
their ``TF_CONFIG``, and tracks the job with submitit.
"""

__version__ = "0.1.0"

from .errors import HpctfError, SpecError  # noqa: E402
from .spec import TensorFlow  # noqa: E402

__all__ = ["TensorFlow", "SpecError", "HpctfError", "render_script", "submit", "attach", "__version__"]


def render_script(spec, paths=None, **kwargs):
    """The sbatch script for ``spec`` (see :func:`hpctf.render.render_script`)."""
    from .render import render_script as _render

    return _render(spec, paths, **kwargs)


def submit(estimator, **kwargs):
    """Submit ``estimator`` to Slurm; a submitit job handle (see :func:`hpctf.api.submit`)."""
    from .api import submit as _submit

    return _submit(estimator, **kwargs)


def attach(job_id, **kwargs):
    """The handle of an earlier job, by id (see :func:`hpctf.api.attach`)."""
    from .api import attach as _attach

    return _attach(job_id, **kwargs)
