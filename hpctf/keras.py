"""``hpctf.keras.MetricsCallback``: what Keras logs, kept with the run (``hpctf metrics``).

::

    from hpctf.keras import MetricsCallback
    model.fit(x, y, epochs=10, callbacks=[MetricsCallback()])

Every epoch's logs (``loss``, ``accuracy``, ``val_loss`` ...) go to
:func:`hpctf.log_metric` with the epoch as the step, counted from 0 as Keras's
``TensorBoard`` callback counts it; ``every_n_batches=N`` adds every N-th training
batch's logs as ``batch/<name>``, the step counting batches over the whole fit. Rank 0
logs (``all_ranks=True``: every rank). With Horovod, put it after
``hvd.callbacks.MetricAverageCallback()``, so it logs the averages.

Importing this module imports TensorFlow (a Keras callback needs Keras). The base class
is the Keras that ``tf.keras`` is in this process: Keras 3, or tf-keras under
``TF_USE_LEGACY_KERAS=1`` (hpctf's ``keras`` policy). A Keras 3 model built with
``import keras`` accepts it either way (Keras 3 calls its callbacks' hooks by name);
tf-keras needs its own base class, so tf.keras decides.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from .job.metrics import log_metrics

__all__ = ["MetricsCallback"]


class MetricsCallback(tf.keras.callbacks.Callback):
    def __new__(cls, every_n_batches: int | None = None, **_options):
        # Batch hooks only when asked for: tf-keras calls a callback that defines them on
        # every batch, and copies the batch's logs from the device to do so.
        if cls is MetricsCallback and every_n_batches is not None:
            cls = _BatchMetricsCallback
        return super().__new__(cls)

    def __init__(self, every_n_batches: int | None = None, *, prefix: str = "", all_ranks: bool = False):
        super().__init__()
        if every_n_batches is not None and (not isinstance(every_n_batches, int) or every_n_batches < 1):
            raise ValueError(f"every_n_batches={every_n_batches!r}: must be an integer >= 1, or None (epochs only)")
        self.every_n_batches = every_n_batches
        self.prefix = prefix
        self.all_ranks = all_ranks
        self.batches_seen = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs:
            log_metrics(self._named(logs), step=epoch, all_ranks=self.all_ranks)

    def _named(self, logs: dict[str, Any], kind: str = "") -> dict[str, Any]:
        return {f"{self.prefix}{kind}{name}": value for name, value in logs.items()}


class _BatchMetricsCallback(MetricsCallback):
    """:class:`MetricsCallback` with ``every_n_batches``."""

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.batches_seen
        self.batches_seen += 1
        if logs and step % self.every_n_batches == 0:
            log_metrics(self._named(logs, "batch/"), step=step, all_ranks=self.all_ranks)
