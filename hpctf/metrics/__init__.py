"""What training runs logged, read on the login node: ``hpctf.log_metric``'s files
(``metrics/rank-<R>.jsonl``) and TensorBoard's event files (``tensorboard/``) of a run
folder, as series and one-line summaries; ``hpctf metrics`` prints them, ``job.metrics()``
returns them.

Standard library at import: numpy, tensorboard, plotext and matplotlib are imported by
the functions that need them, TensorFlow never.

>>> run = read_run(record.run_dir)
>>> [summarise(s) for s in run.series]
"""

from .read import read_run
from .series import Row, RunMetrics, Series
from .summary import Summary, guess_goal, summarise

__all__ = ["Row", "RunMetrics", "Series", "Summary", "guess_goal", "read_run", "summarise"]
