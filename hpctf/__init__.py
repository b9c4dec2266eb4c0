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
    "Sweep",
    "log_metric",
    "log_metrics",
    "__version__",
]


def lazy_names(module: str, where: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``module``, whose names in ``where`` are loaded
    on first use from the module ``where[name]`` names (and kept): a name costs its
    import only when it is used. For this package, ``hpctf.runtime`` and ``hpctf.metrics``."""
    import sys

    def __getattr__(name):
        if name not in where:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[module], name, value)
        return value

    def __dir__():
        return sorted(list(vars(sys.modules[module])) + list(where))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "TensorFlow": "hpctf.spec",
        "SpecError": "hpctf.errors",
        "HpctfError": "hpctf.errors",
        "render_script": "hpctf.render",
        "submit": "hpctf.api",
        "attach": "hpctf.api",
        "Sweep": "hpctf.sweep.handle",
        # In the job: standard library only (hpctf.job.metrics).
        "log_metric": "hpctf.job.metrics",
        "log_metrics": "hpctf.job.metrics",
    },
)
