"""Digits with MultiWorkerMirroredStrategy: every worker holds a replica, gradients are
all-reduced by TensorFlow's collectives.

hpctf gives each worker a workers-only TF_CONFIG (`--backend ps --ps 0`); worker 0 is the
chief and the only one that writes the checkpoint; it logs each epoch's loss too
(``hpctf.log_metric`` keeps rank 0's calls, and worker 0 is rank 0: ``hpctf metrics JOB``).
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import hpctf  # noqa: E402


def load_data():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y.astype("int64"), test_size=0.25, random_state=0)


def build_model() -> tf.keras.Model:
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(64,)),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32, help="per worker")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--checkpoint-dir", default="checkpoints")
    args = parser.parse_args()

    task = json.loads(os.environ["TF_CONFIG"])["task"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = strategy.num_replicas_in_sync
    print(f"worker {task['index']} of {workers}", flush=True)

    x_train, x_test, y_train, y_test = load_data()
    global_batch = args.batch_size * workers
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=0)
        .batch(global_batch, drop_remainder=True)
    )
    dist_dataset = strategy.experimental_distribute_dataset(dataset)  # shards by worker

    with strategy.scope():
        model = build_model()
        optimizer = tf.keras.optimizers.Adam(args.learning_rate)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    @tf.function
    def train_step(batch):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(loss_fn(y, model(x, training=True)), global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_fn, args=batch), axis=None)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        for batch in dist_dataset:
            loss = train_step(batch)
        hpctf.log_metric("loss", float(loss), step=epoch)  # the epoch's last step, the same on every worker
        if (epoch + 1) % 5 == 0:
            print(f"worker {task['index']} epoch {epoch + 1}/{args.epochs} loss={float(loss):.4f}", flush=True)
    seconds = time.perf_counter() - start

    accuracy = float((tf.argmax(model(x_test), axis=1).numpy() == y_test).mean())
    if task["index"] == 0:
        path = tf.train.Checkpoint(model=model).write(os.path.join(args.checkpoint_dir, "digits"))
        print(f"checkpoint {path}")
    print(f"worker {task['index']} samples/s={len(x_train) * args.epochs / seconds:.0f}")
    print(f"worker {task['index']} accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
