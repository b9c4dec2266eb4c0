"""What training runs logged, read on the login node: ``hpctf.log_metric``'s files
(``metrics/rank-<R>.jsonl``) and TensorBoard's event files (``tensorboard/``) of a run
folder, as series and one-line summaries; ``hpctf metrics`` prints them, ``job.metrics()``
returns them.

Names load on first use: ``hpctf status`` imports :mod:`.latest` alone (its one line),
not the readers. numpy, tensorboard, plotext and matplotlib are imported by the
functions that need them, TensorFlow never.

>>> run = read_run(record.run_dir)
>>> [summarise(s) for s in run.series]
"""

__all__ = ["Row", "RunMetrics", "Series", "Summary", "guess_goal", "read_run", "summarise"]

_LAZY = {
    "read_run": "read",
    "Row": "series",
    "RunMetrics": "series",
    "Series": "series",
    "Summary": "summary",
    "guess_goal": "summary",
    "summarise": "summary",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'hpctf.metrics' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
