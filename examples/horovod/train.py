"""Digits with Horovod: one process per GPU (or CPU slot), gradients averaged by allreduce.

What Horovod needs, step by step: hvd.init(); one GPU per process; the learning rate
scaled by the number of processes; every process starts from rank 0's weights; each
process trains on its own shard; metrics averaged over processes; only rank 0 writes
checkpoints. hpctf starts the processes (srun --mpi=pmix or mpirun) and gives each one
its own GPU, so this file has no launcher code at all.

Preemption and time limits: submitted with requeue (``hpctf submit --requeue``), the job
is told to stop shortly before its time limit (every rank gets SIGUSR1). The ranks agree
to stop after the same step, rank 0 saves a checkpoint, and when Slurm starts the job
again rank 0 restores it and broadcasts it, so training goes on from that step.

What the run keeps (rank 0 writes, the others only take part in the averaging): each
epoch's loss averaged over the ranks (``hpctf.log_metric``: ``hpctf metrics JOB``), the
same as a TensorBoard scalar (``hpctf tensorboard JOB``) and the trained model
(``hpctf outputs JOB``).
"""

import argparse
import hashlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import horovod.tensorflow as hvd  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import hpctf  # noqa: E402
from hpctf.runtime import CHECKPOINT_SIGNAL_ENV, install, restart_count, should_checkpoint  # noqa: E402

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


def use_one_gpu() -> None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    # hpctf shows each process exactly one GPU; under a launcher that shows all of a
    # node's GPUs, take the local rank's.
    gpu = gpus[hvd.local_rank() % len(gpus)]
    tf.config.set_visible_devices(gpu, "GPU")
    tf.config.experimental.set_memory_growth(gpu, True)


def broadcast_from_rank_0(variables) -> None:
    """Every process starts from rank 0's values.

    hvd.broadcast_variables() needs tf.Variable objects; Keras 3 variables are not, so
    broadcast their values one by one (each collective needs its own name).
    """
    for i, variable in enumerate(variables):
        variable.assign(hvd.broadcast(tf.convert_to_tensor(variable), root_rank=0, name=f"initial.{i}"))


def weights_digest(model: tf.keras.Model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def stop_requested(check: bool) -> bool:
    """Whether any rank was told to stop. The signal reaches the ranks at slightly
    different steps: all must stop after the same one, or an allreduce waits forever."""
    if not check:
        return False
    flag = tf.constant(1.0 if should_checkpoint() else 0.0)
    return float(hvd.allreduce(flag, op=hvd.Max, name="stop_requested")) > 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="for one process")
    parser.add_argument("--checkpoint-dir", default="checkpoints", help="relative to the run's working folder")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="epochs between checkpoints (0: at the end and when told to stop)",
    )
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep after each step")
    args = parser.parse_args()
    install()  # from here on, a stop request (SIGUSR1) is noted, not fatal
    # Asking every step costs an allreduce: only where a request can come (requeue jobs).
    check_stop = CHECKPOINT_SIGNAL_ENV in os.environ

    hvd.init()
    use_one_gpu()
    rank, size = hvd.rank(), hvd.size()
    print(f"rank {rank}/{size} local_rank {hvd.local_rank()} host {os.uname().nodename}", flush=True)

    x_train, x_test, y_train, y_test = load_data()
    x_shard, y_shard = x_train[rank::size], y_train[rank::size]
    # Every process must run the same number of steps, or an allreduce waits forever.
    steps = (len(x_train) // size) // args.batch_size

    tf.keras.utils.set_random_seed(rank)  # different on purpose: the broadcast aligns them
    model = build_model()
    optimizer = tf.keras.optimizers.Adam(args.learning_rate * size)
    optimizer.build(model.trainable_variables)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        grads = hvd.grouped_allreduce(grads, op=hvd.Average)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    # Checkpoints hold the model, the optimizer and the global step; only rank 0 reads and
    # writes them, the broadcast below gives every rank its state.
    global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=global_step)
    manager = tf.train.CheckpointManager(checkpoint, args.checkpoint_dir, max_to_keep=2, checkpoint_name="digits")
    if rank == 0 and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(
            f"resuming from step {int(global_step.numpy())} (restart {restart_count()}): {manager.latest_checkpoint}",
            flush=True,
        )

    broadcast_from_rank_0(model.variables + optimizer.variables + [global_step])

    def save(why: str) -> None:
        if rank == 0:
            path = manager.save(checkpoint_number=int(global_step.numpy()))
            print(f"checkpoint {why} at step {int(global_step.numpy())}: {path}", flush=True)
        hvd.allreduce(tf.constant(0.0), name="saved")  # the others wait for rank 0's write

    dataset = (
        tf.data.Dataset.from_tensor_slices((x_shard, y_shard))
        .shuffle(len(x_shard), seed=rank)
        .batch(args.batch_size, drop_remainder=True)
    )
    summaries = tf.summary.create_file_writer(TENSORBOARD_DIR) if rank == 0 else None
    first_step = int(global_step.numpy())
    first_epoch = min(first_step // steps, args.epochs)
    start = None
    for epoch in range(first_epoch, args.epochs):
        if epoch == first_epoch + 1:
            start = time.perf_counter()  # the first epoch includes tracing
        done_in_epoch = first_step - epoch * steps if epoch == first_epoch else 0
        loss_sum, loss_count = tf.constant(0.0), 0
        for x, y in dataset.take(steps).skip(done_in_epoch):
            loss = train_step(x, y)
            loss_sum, loss_count = loss_sum + loss, loss_count + 1
            global_step.assign_add(1)
            if args.step_delay:
                time.sleep(args.step_delay)  # stands in for a bigger model (the tests use it)
            if stop_requested(check_stop):
                save("saved")
                if rank == 0:
                    print(
                        f"stopped at step {int(global_step.numpy())}: "
                        "the job resumes from the checkpoint when it runs again",
                        flush=True,
                    )
                sys.exit(0)
        epoch_loss = float(hvd.allreduce(loss_sum / max(loss_count, 1), op=hvd.Average, name="epoch_loss"))
        hpctf.log_metric("loss", epoch_loss, step=epoch)  # rank 0's call writes; the others' return
        if summaries:
            with summaries.as_default():
                tf.summary.scalar("loss", epoch_loss, step=epoch)
        if rank == 0 and (epoch + 1) % 5 == 0:
            print(f"epoch {epoch + 1}/{args.epochs} loss={epoch_loss:.4f}", flush=True)
        if args.checkpoint_every and (epoch + 1) % args.checkpoint_every == 0 and epoch + 1 < args.epochs:
            save("saved")
    seconds = time.perf_counter() - start if start else float("nan")
    timed_epochs = args.epochs - first_epoch - 1

    correct = tf.reduce_sum(tf.cast(tf.argmax(model(x_test[rank::size]), axis=1) == y_test[rank::size], tf.float32))
    totals = hvd.allreduce(tf.stack([correct, float(len(x_test[rank::size]))]), op=hvd.Sum)
    accuracy = float(totals[0] / totals[1])
    samples = hvd.allreduce(tf.constant(steps * args.batch_size * timed_epochs / seconds), op=hvd.Sum)

    print(f"rank {rank}/{size} weights={weights_digest(model)}", flush=True)
    hpctf.log_metric("test_accuracy", accuracy, step=args.epochs - 1)
    if rank == 0:
        path = manager.save(checkpoint_number=int(global_step.numpy()))
        print(f"checkpoint {path}")
        model.save(os.path.join(OUTPUT_DIR, "digits.keras"))
        print(f"model saved to {os.path.join(OUTPUT_DIR, 'digits.keras')}")
        print(f"samples/s={float(samples):.0f}")
        print(f"accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
