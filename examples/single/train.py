"""Digits on one process: a small Keras model, data from scikit-learn (no download).

Preemption and time limits: submitted with requeue (``hpctf submit --requeue``), the job
is told to stop shortly before its time limit; this script then saves a checkpoint and
exits, and when Slurm starts the job again it resumes from that checkpoint
(``CheckpointOnRequest`` below, a Keras callback around ``hpctf.runtime.should_checkpoint``).

What the run keeps: every epoch's loss and accuracy (``hpctf metrics JOB``, through
``hpctf.keras.MetricsCallback``), TensorBoard event files (``hpctf tensorboard JOB``) and
the trained model (``hpctf outputs JOB``), in the folders hpctf names in
``HPCTF_METRICS_DIR``, ``HPCTF_TENSORBOARD_DIR`` and ``HPCTF_OUTPUT_DIR``.
"""

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import hpctf  # noqa: E402
from hpctf.keras import MetricsCallback  # noqa: E402
from hpctf.runtime import install, restart_count, should_checkpoint  # noqa: E402

# Outside an hpctf job (python train.py), the same folders under the working folder.
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


class CheckpointOnRequest(tf.keras.callbacks.Callback):
    """Saves a checkpoint every ``every`` epochs and, when the job is told to stop
    (``should_checkpoint()``), right after the current step; then stops training."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int = 0, step_delay: float = 0.0):
        super().__init__()
        self.manager, self.every, self.step_delay = manager, every, step_delay
        self.stopped_at: int | None = None

    def step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def save(self) -> None:
        path = self.manager.save(checkpoint_number=self.step())
        print(f"checkpoint saved at step {self.step()}: {path}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.step_delay:
            time.sleep(self.step_delay)  # stands in for a bigger model (the tests use it)
        if should_checkpoint():
            self.save()
            self.stopped_at = self.step()
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.every and self.stopped_at is None and (epoch + 1) % self.every == 0:
            self.save()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--checkpoint-dir", default="checkpoints", help="relative to the run's working folder")
    parser.add_argument(
        "--checkpoint-every", type=int, default=5, help="epochs between checkpoints (0: only when told to stop)"
    )
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep after each step")
    args = parser.parse_args()
    install()  # from here on, a stop request (SIGUSR1 from the job script) is noted, not fatal

    tf.keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_data()
    model = build_model()
    optimizer = tf.keras.optimizers.Adam(args.learning_rate)
    optimizer.build(model.trainable_variables)  # restore needs the optimizer's variables
    model.compile(
        optimizer=optimizer,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, args.checkpoint_dir, max_to_keep=2, checkpoint_name="digits")
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    initial_epoch = 0
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        step = int(optimizer.iterations.numpy())
        # Keras fit resumes at an epoch boundary: a partial epoch is trained again.
        initial_epoch = min(step // steps_per_epoch, args.epochs)
        print(
            f"resuming from step {step} (epoch {initial_epoch + 1}, restart {restart_count()}): "
            f"{manager.latest_checkpoint}",
            flush=True,
        )
    else:
        print(f"starting from step 0 (restart {restart_count()})", flush=True)

    callback = CheckpointOnRequest(manager, args.checkpoint_every, args.step_delay)
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        initial_epoch=initial_epoch,
        batch_size=args.batch_size,
        verbose=2,
        validation_data=(x_test, y_test),
        callbacks=[callback, MetricsCallback(), tf.keras.callbacks.TensorBoard(TENSORBOARD_DIR)],
    )
    seconds = time.perf_counter() - start
    if callback.stopped_at is not None:
        print(
            f"stopped at step {callback.stopped_at}: the job resumes from the checkpoint when it runs again", flush=True
        )
        sys.exit(0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    hpctf.log_metric("test_accuracy", accuracy)
    model.save(os.path.join(OUTPUT_DIR, "digits.keras"))
    print(f"model saved to {os.path.join(OUTPUT_DIR, 'digits.keras')}")
    print(f"samples/s={len(x_train) * (args.epochs - initial_epoch) / seconds:.0f}")
    print(f"accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
