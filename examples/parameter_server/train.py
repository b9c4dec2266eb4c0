"""Digits with ParameterServerStrategy: a chief drives, workers compute, ps hold variables.

hpctf gives every task a TF_CONFIG built from the job's Slurm node list. The ps and
worker tasks start a tf.distribute.Server and serve until the chief is done (hpctf then
stops them); the chief schedules training steps on the workers with a ClusterCoordinator
and evaluates the model.

What the run keeps, written by the chief: the loss every 10 steps and the test accuracy
(``hpctf.log_metric``: ``hpctf metrics JOB``), the same as TensorBoard scalars
(``hpctf tensorboard JOB``) and the trained weights (``hpctf outputs JOB``).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")

import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import hpctf  # noqa: E402

# Outside an hpctf job, the same folders under the working folder.
OUTPUT_DIR = os.environ.get("HPCTF_OUTPUT_DIR", "outputs")
TENSORBOARD_DIR = os.environ.get("HPCTF_TENSORBOARD_DIR", "tensorboard")
os.makedirs(OUTPUT_DIR, exist_ok=True)


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


def serve(resolver) -> None:
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    print(f"{resolver.task_type} {resolver.task_id} serving at {server.target}", flush=True)
    server.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    args = parser.parse_args()

    if "TF_CONFIG" not in os.environ:
        raise ValueError("TF_CONFIG not found.")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type in ("ps", "worker"):
        serve(resolver)
        return

    strategy = tf.distribute.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    x_train, x_test, y_train, y_test = load_data()
    with strategy.scope():
        model = build_model()
        optimizer = tf.keras.optimizers.Adam(args.learning_rate)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    def dataset_fn(_context=None):
        ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
        return ds.shuffle(len(x_train)).repeat().batch(args.batch_size, drop_remainder=True)

    @tf.function
    def per_worker_dataset_fn():
        return strategy.distribute_datasets_from_function(dataset_fn)

    iterator = iter(coordinator.create_per_worker_dataset(per_worker_dataset_fn))

    @tf.function
    def train_step(iterator):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(loss_fn(y, model(x, training=True)))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            # Runs on the worker: its log shows which worker executed steps.
            tf.print("worker step", optimizer.iterations, output_stream=sys.stderr)
            return loss

        x, y = next(iterator)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(replica_fn, args=(x, y)), axis=None)

    start = time.perf_counter()
    losses = [coordinator.schedule(train_step, args=(iterator,)) for _ in range(args.steps)]
    coordinator.join()
    seconds = time.perf_counter() - start
    print(f"trained {args.steps} steps, last loss={float(losses[-1].fetch()):.4f}", flush=True)
    with tf.summary.create_file_writer(TENSORBOARD_DIR).as_default():
        for step in [*range(0, args.steps, 10), args.steps - 1]:
            loss = float(losses[step].fetch())  # done: coordinator.join() waited for every step
            hpctf.log_metric("loss", loss, step=step)
            tf.summary.scalar("loss", loss, step=step)

    predictions = tf.argmax(model(x_test), axis=1).numpy()
    accuracy = float((predictions == y_test).mean())
    hpctf.log_metric("test_accuracy", accuracy, step=args.steps - 1)
    model.save_weights(os.path.join(OUTPUT_DIR, "digits.weights.h5"))
    print(f"weights saved to {os.path.join(OUTPUT_DIR, 'digits.weights.h5')}")
    print(f"samples/s={args.steps * args.batch_size / seconds:.0f}")
    print(f"accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
