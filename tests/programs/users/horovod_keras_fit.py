"""Horovod's Keras API as Horovod's own examples use it (tensorflow2_keras_mnist.py).

Written for hpctf's tests, in the shape of that upstream script: `hvd.DistributedOptimizer`,
`compile(..., experimental_run_tf_function=False)`, the broadcast, metric-average and
learning-rate warm-up callbacks, a checkpoint on rank 0, Keras progress on rank 0. No
hpctf import, no environment variable of its own: it must run as users' scripts do.
Data: generated_data.py, in place of MNIST's download.
"""

import sys

import tensorflow as tf

import horovod.tensorflow.keras as hvd

import generated_data


def main():
    # Horovod: initialize Horovod.
    hvd.init()

    # Horovod: pin GPU to be used to process local rank (one GPU per process)
    gpus = tf.config.experimental.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        tf.config.experimental.set_visible_devices(gpus[hvd.local_rank()], "GPU")

    images, labels = generated_data.images(4096, seed=hvd.rank())
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.cast(images[..., tf.newaxis] / 255.0, tf.float32), tf.cast(labels, tf.int64))
    )
    dataset = dataset.repeat().shuffle(4096).batch(64)

    model = tf.keras.Sequential(
        [
            tf.keras.layers.Conv2D(8, [3, 3], activation="relu"),
            tf.keras.layers.MaxPooling2D(pool_size=(2, 2)),
            tf.keras.layers.Dropout(0.25),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )

    # Horovod: adjust learning rate based on number of workers. Users of Keras 2.11 -
    # 2.15 often wrap the legacy optimizers instead (Horovod's examples did for a while).
    scaled_lr = 0.002 * hvd.size()
    if sys.argv[1:] == ["--legacy-optimizers"]:
        opt = tf.keras.optimizers.legacy.Adam(scaled_lr)
    else:
        opt = tf.optimizers.Adam(scaled_lr)

    # Horovod: add Horovod DistributedOptimizer.
    opt = hvd.DistributedOptimizer(opt, backward_passes_per_step=1, average_aggregated_gradients=True)

    # Horovod: `experimental_run_tf_function=False` makes TensorFlow use the
    # DistributedOptimizer to compute gradients.
    model.compile(
        loss=tf.losses.SparseCategoricalCrossentropy(),
        optimizer=opt,
        metrics=["accuracy"],
        experimental_run_tf_function=False,
    )

    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
        hvd.callbacks.LearningRateWarmupCallback(initial_lr=scaled_lr, warmup_epochs=2, verbose=1),
    ]
    # Horovod: save checkpoints only on worker 0.
    if hvd.rank() == 0:
        callbacks.append(tf.keras.callbacks.ModelCheckpoint("./checkpoint-{epoch}.h5"))

    verbose = 2 if hvd.rank() == 0 else 0
    history = model.fit(dataset, steps_per_epoch=256 // hvd.size(), callbacks=callbacks, epochs=4, verbose=verbose)
    if hvd.rank() == 0:
        # Averaged over the ranks by MetricAverageCallback.
        print(f"final accuracy {history.history['accuracy'][-1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
