"""ParameterServerStrategy with Keras Model.fit, as TensorFlow's parameter-server tutorial
(tutorials/distribute/parameter_server_training) runs it on a real cluster.

Written for hpctf's tests, in the shape of that tutorial's "clusters in the real world"
form: one program for every task; TFConfigClusterResolver reads TF_CONFIG; workers and
parameter servers start a `tf.distribute.Server` and `join()` it (they never return: the
launcher stops them when the chief is done); the chief builds the model with a variable
partitioner over the parameter servers, compiles it with a `tf.keras.optimizers.legacy`
optimizer and `steps_per_execution`, and calls `fit` with the tutorial's callbacks.
No hpctf import, no environment variable set before TensorFlow starts. Data: generated.
"""

import os

import tensorflow as tf

cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
if cluster_resolver.task_type in ("worker", "ps"):
    # Report worker and parameter-server failures to the coordinator.
    os.environ["GRPC_FAIL_FAST"] = "use_caller"
    server = tf.distribute.Server(
        cluster_resolver.cluster_spec(),
        job_name=cluster_resolver.task_type,
        task_index=cluster_resolver.task_id,
        protocol=cluster_resolver.rpc_layer or "grpc",
        start=True,
    )
    server.join()

os.environ["GRPC_FAIL_FAST"] = "use_caller"
num_ps = len(cluster_resolver.cluster_spec().as_dict().get("ps", []))
variable_partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
    min_shard_bytes=(256 << 10), max_shards=num_ps
)
strategy = tf.distribute.ParameterServerStrategy(cluster_resolver, variable_partitioner=variable_partitioner)

x = tf.random.uniform((256, 10))
y = tf.reduce_sum(x, axis=1, keepdims=True) * 0.5
dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256).repeat().batch(64).prefetch(2)

with strategy.scope():
    model = tf.keras.models.Sequential([tf.keras.layers.Dense(1)])
    model.compile(tf.keras.optimizers.legacy.SGD(learning_rate=0.05), loss="mse", steps_per_execution=10)

working_dir = os.path.abspath("ps_fit_work")
callbacks = [
    tf.keras.callbacks.TensorBoard(log_dir=os.path.join(working_dir, "log")),
    tf.keras.callbacks.ModelCheckpoint(filepath=os.path.join(working_dir, "ckpt")),
    tf.keras.callbacks.BackupAndRestore(backup_dir=os.path.join(working_dir, "backup")),
]
history = model.fit(dataset, epochs=5, steps_per_epoch=20, callbacks=callbacks, verbose=2)
print(f"chief: loss {history.history['loss'][0]:.4f} -> {history.history['loss'][-1]:.4f}", flush=True)
