"""hpctf: the TensorFlow estimator for Slurm.

Describe a training job once (``hpctf.TensorFlow(...)``); hpctf renders it into a plain
sbatch script, starts one process, Horovod over Open MPI, or parameter-server tasks with
their ``TF_CONFIG``, and tracks the job with submitit.

Names are loaded on first use: ``python -m hpctf.runtime`` starts in every task of every
job and must not pay for the estimator, Jinja or submitit.
"""

__version__ = "0.1.0"

__all__ = [
    "TensorFlow",
    "SpecError",
    "HpctfError",
    "render_script",
    "submit",
    "attach",
    "log_metric",
    "log_metrics",
    "__version__",
]

_LAZY = {
    "TensorFlow": ("spec", "TensorFlow"),
    "SpecError": ("errors", "SpecError"),
    "HpctfError": ("errors", "HpctfError"),
    "render_script": ("render", "render_script"),
    "submit": ("api", "submit"),
    "attach": ("api", "attach"),
    # In the job: standard library only (hpctf.job.metrics).
    "log_metric": ("job.metrics", "log_metric"),
    "log_metrics": ("job.metrics", "log_metrics"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'hpctf' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
