"""hpctf: the TensorFlow estimator for Slurm.

Describe a training job once (``hpctf.TensorFlow(...)``); hpctf renders it into a plain
sbatch script, starts one process, Horovod over Open MPI, or parameter-server tasks with
their ``TF_CONFIG``, and tracks the job with submitit.
"""

__version__ = "0.1.0"

from .errors import HpctfError, SpecError  # noqa: E402
from .spec import TensorFlow  # noqa: E402

__all__ = ["TensorFlow", "SpecError", "HpctfError", "render_script", "__version__"]


def render_script(spec, paths=None, **kwargs):
    """The sbatch script for ``spec`` (see :func:`hpctf.render.render_script`)."""
    from .render import render_script as _render

    return _render(spec, paths, **kwargs)
