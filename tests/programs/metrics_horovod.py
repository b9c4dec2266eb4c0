"""Horovod + Keras fit that keeps its metrics through hpctf (issue 17's cluster test).

The epoch metrics come from hpctf.keras.MetricsCallback placed after Horovod's
MetricAverageCallback (so rank 0 logs the averages); images per second come from
hpctf.log_metric on every rank (all_ranks=True). Rank 0 prints Keras's history, which the
test compares with what `hpctf metrics` shows.
"""

import json
import time

import horovod.tensorflow.keras as hvd
import tensorflow as tf

import hpctf
from hpctf.keras import MetricsCallback


class ImagesPerSecond(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        rate = self.params["steps"] * 32 / (time.perf_counter() - self.start)
        hpctf.log_metric("images_per_second", rate, step=epoch, all_ranks=True)


hvd.init()
x = tf.random.stateless_uniform((1024, 8), seed=(hvd.rank(), 0))
y = tf.cast(tf.reduce_sum(x, axis=1) > 4.0, tf.int64)
dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32)
model = tf.keras.Sequential(
    [tf.keras.Input((8,)), tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(2)]
)
model.compile(
    optimizer=hvd.DistributedOptimizer(tf.optimizers.SGD(0.05 * hvd.size())),
    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    experimental_run_tf_function=False,
)
callbacks = [
    hvd.callbacks.BroadcastGlobalVariablesCallback(0),
    hvd.callbacks.MetricAverageCallback(),
    MetricsCallback(),
    ImagesPerSecond(),
]
history = model.fit(dataset, steps_per_epoch=16, epochs=4, callbacks=callbacks, verbose=0)
if hvd.rank() == 0:
    print("HISTORY " + json.dumps({k: [float(v) for v in vs] for k, vs in history.history.items()}), flush=True)
