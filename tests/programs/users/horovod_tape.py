"""A Horovod custom training loop as Horovod's own examples write it (tensorflow2_mnist.py).

Written for hpctf's tests, in the shape of that upstream script: `hvd.DistributedGradientTape`,
`opt.apply_gradients`, and after the first step `hvd.broadcast_variables(model.variables)`
and `hvd.broadcast_variables(opt.variables(), root_rank=0)`; rank 0 saves a checkpoint.
No hpctf import, no environment variable of its own. Data: generated_data.py,
in place of MNIST's download.
"""

import tensorflow as tf

import horovod.tensorflow as hvd

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
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    loss = tf.losses.SparseCategoricalCrossentropy()

    # Horovod: adjust learning rate based on number of workers.
    opt = tf.optimizers.Adam(0.002 * hvd.size())

    checkpoint_dir = "./checkpoints"
    checkpoint = tf.train.Checkpoint(model=model, optimizer=opt)

    @tf.function
    def training_step(images, labels, first_batch):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss_value = loss(labels, probs)

        # Horovod: add Horovod Distributed GradientTape.
        tape = hvd.DistributedGradientTape(tape)

        grads = tape.gradient(loss_value, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))

        # Horovod: broadcast initial variable states from rank 0 to all other processes,
        # after the first step so that the optimizer's variables exist.
        if first_batch:
            hvd.broadcast_variables(model.variables, root_rank=0)
            hvd.broadcast_variables(opt.variables(), root_rank=0)

        return loss_value

    # Horovod: adjust number of steps based on number of workers.
    for batch, (images, labels) in enumerate(dataset.take(400 // hvd.size())):
        loss_value = training_step(images, labels, batch == 0)

        if batch % 10 == 0 and hvd.local_rank() == 0:
            print("Step #%d\tLoss: %.6f" % (batch, loss_value), flush=True)

    # Horovod: save checkpoints only on worker 0.
    if hvd.rank() == 0:
        print("checkpoint", checkpoint.save(checkpoint_dir), flush=True)


if __name__ == "__main__":
    main()
