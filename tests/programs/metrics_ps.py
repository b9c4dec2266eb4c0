"""ParameterServerStrategy + Keras fit on the chief, keeping its metrics through hpctf.

Workers and parameter servers serve (hpctf stops them when the chief is done). The chief
is rank 0, so hpctf.keras.MetricsCallback and hpctf.log_metric write from it.
"""

import json
import os

import tensorflow as tf

resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
if resolver.task_type in ("worker", "ps"):
    os.environ["GRPC_FAIL_FAST"] = "use_caller"
    tf.distribute.Server(
        resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id, protocol="grpc", start=True
    ).join()

import hpctf  # noqa: E402
from hpctf.keras import MetricsCallback  # noqa: E402

strategy = tf.distribute.ParameterServerStrategy(resolver)
x = tf.random.stateless_uniform((256, 10), seed=(1, 2))
y = tf.reduce_sum(x, axis=1, keepdims=True) * 0.5
dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256).repeat().batch(32)
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.compile(tf.keras.optimizers.legacy.SGD(learning_rate=0.05), loss="mse", steps_per_execution=5)
history = model.fit(dataset, epochs=4, steps_per_epoch=10, callbacks=[MetricsCallback()], verbose=0)
hpctf.log_metric("final_loss", history.history["loss"][-1], step=3)
print("HISTORY " + json.dumps({k: [float(v) for v in vs] for k, vs in history.history.items()}), flush=True)
