"""MultiWorkerMirroredStrategy with Keras Model.fit, as TensorFlow's multi-worker tutorial
(tutorials/distribute/multi_worker_with_keras) runs it on each worker.

Written for hpctf's tests, in the shape of that tutorial's main.py: it reads the number of
workers from TF_CONFIG, builds and compiles the model inside `strategy.scope()` with the
(non-legacy) SGD optimizer, and calls `fit` with a repeated dataset and steps_per_epoch.
No hpctf import, no environment variable of its own. Data: generated.
"""

import json
import os

import numpy as np
import tensorflow as tf


def generated_dataset(batch_size):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 10, size=4000)
    images = np.clip(rng.normal((labels[:, None, None] + 0.5) * 25.6, 30.0, size=(4000, 28, 28)), 0, 255)
    x_train = images.astype(np.uint8) / np.float32(255)
    y_train = labels.astype(np.int64)
    return tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(4000).repeat().batch(batch_size)


def build_and_compile_model():
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(28, 28)),
            tf.keras.layers.Reshape(target_shape=(28, 28, 1)),
            tf.keras.layers.Conv2D(8, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )
    model.compile(
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=tf.keras.optimizers.SGD(learning_rate=0.01),
        metrics=["accuracy"],
    )
    return model


per_worker_batch_size = 32
tf_config = json.loads(os.environ["TF_CONFIG"])
num_workers = len(tf_config["cluster"]["worker"])

strategy = tf.distribute.MultiWorkerMirroredStrategy()

global_batch_size = per_worker_batch_size * num_workers
dataset = generated_dataset(global_batch_size)

with strategy.scope():
    # Model building and compiling must be within `strategy.scope()`.
    model = build_and_compile_model()

history = model.fit(dataset, epochs=3, steps_per_epoch=40, verbose=2)
print(
    f"worker {tf_config['task']['index']} of {num_workers}: final accuracy {history.history['accuracy'][-1]:.3f}",
    flush=True,
)
