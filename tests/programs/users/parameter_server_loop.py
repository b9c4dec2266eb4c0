"""ParameterServerStrategy with a ClusterCoordinator custom training loop, as TensorFlow's
parameter-server tutorial (tutorials/distribute/parameter_server_training) writes it.

Written for hpctf's tests, in the shape of that tutorial: one program for every task
(workers and parameter servers serve through `tf.distribute.Server(...).join()`); the
chief creates variables under `strategy.scope()` (a sharded embedding, a legacy RMSprop,
a Keras metric), builds per-worker datasets with `coordinator.create_per_worker_dataset`
and `strategy.distribute_datasets_from_function`, schedules `step_fn` with
`coordinator.schedule`, waits with `coordinator.join()` each epoch and fetches a
RemoteValue. No hpctf import, no environment variable set before TensorFlow starts.
"""

import os
import random

import tensorflow as tf

cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
if cluster_resolver.task_type in ("worker", "ps"):
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
strategy = tf.distribute.ParameterServerStrategy(
    cluster_resolver,
    variable_partitioner=tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=(256 << 10), max_shards=num_ps
    ),
)

words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
with strategy.scope():
    word_lookup = tf.keras.layers.StringLookup(vocabulary=words, mask_token=None)
    raw_words = tf.keras.layers.Input(shape=(3,), dtype=tf.string, name="words")
    preprocess = tf.keras.Model({"words": raw_words}, word_lookup(raw_words))

random.seed(3)
samples = [random.sample(words, 3) for _ in range(200)]
examples = {"words": samples, "label": [[1.0 if "alpha" in s else 0.0] for s in samples]}


def dataset_fn(_):
    raw = tf.data.Dataset.from_tensor_slices(examples)
    return raw.map(lambda e: ({"words": preprocess(e["words"])}, e["label"])).shuffle(200).batch(32).repeat()


with strategy.scope():
    ids = tf.keras.layers.Input(shape=(3,), dtype=tf.int64, name="ids")
    embedding = tf.keras.layers.Embedding(input_dim=len(word_lookup.get_vocabulary()), output_dim=16384)
    probability = tf.keras.layers.Dense(units=1, activation="sigmoid")(tf.reduce_mean(embedding(ids), axis=1))
    model = tf.keras.Model({"words": ids}, probability)
    optimizer = tf.keras.optimizers.legacy.RMSprop(learning_rate=0.1)
    accuracy = tf.keras.metrics.Accuracy()

print(f"embedding in {len(embedding.weights)} shard(s) on {sorted({w.device for w in embedding.weights})}", flush=True)


@tf.function
def step_fn(iterator):
    def replica_fn(batch, labels):
        with tf.GradientTape() as tape:
            predictions = model(batch, training=True)
            per_example = tf.keras.losses.BinaryCrossentropy(reduction=tf.keras.losses.Reduction.NONE)(
                labels, predictions
            )
            loss = tf.nn.compute_average_loss(per_example)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        accuracy.update_state(labels, tf.cast(tf.greater(predictions, 0.5), tf.float32))
        return loss

    batch, labels = next(iterator)
    losses = strategy.run(replica_fn, args=(batch, labels))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)


coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)


@tf.function
def per_worker_dataset_fn():
    return strategy.distribute_datasets_from_function(dataset_fn)


per_worker_iterator = iter(coordinator.create_per_worker_dataset(per_worker_dataset_fn))
for epoch in range(4):
    accuracy.reset_states()
    for _ in range(5):
        coordinator.schedule(step_fn, args=(per_worker_iterator,))
    coordinator.join()  # wait at the end of every epoch
    print(f"Finished epoch {epoch}, accuracy is {accuracy.result().numpy():f}.", flush=True)

loss = coordinator.schedule(step_fn, args=(per_worker_iterator,))
print(f"Final loss is {loss.fetch():f}", flush=True)
