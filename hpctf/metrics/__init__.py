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


from .. import lazy_names  # noqa: E402

__getattr__, __dir__ = lazy_names(__name__, {name: f"{__name__}.{module}" for name, module in _LAZY.items()})
