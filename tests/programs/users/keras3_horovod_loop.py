"""A Horovod custom training loop written against Keras 3 (`import keras`), as users of
TensorFlow >= 2.16 write them today: Keras 3 variables, `hvd.grouped_allreduce` of the
gradients, the initial weights broadcast from rank 0. hpctf's Keras policy changes what
`tf.keras` is, never what `import keras` is: this must keep working under every policy.
It prints which Keras `tf.keras` is, so the tests can see the policy at work.
"""

import keras
import numpy as np
import tensorflow as tf

import horovod.tensorflow as hvd

hvd.init()
tf_keras_package = type(tf.keras.optimizers.SGD()).__module__.split(".")[0]
print(f"rank {hvd.rank()}/{hvd.size()}: keras {keras.__version__}; tf.keras is {tf_keras_package}", flush=True)

rng = np.random.default_rng(hvd.rank())
x = rng.random((512, 8)).astype("float32")
y = x @ np.arange(1, 9, dtype="float32")[:, None] / 8.0

model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(learning_rate=0.05)
for variable in model.variables:
    variable.assign(hvd.broadcast(variable.value, root_rank=0))


@tf.function
def train_step(features, targets):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(features, training=True) - targets) ** 2)
    gradients = tape.gradient(loss, model.trainable_variables)
    gradients = hvd.grouped_allreduce(gradients, op=hvd.Average)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
for epoch in range(5):
    for features, targets in dataset:
        loss = train_step(features, targets)
    if hvd.rank() == 0:
        print(f"epoch {epoch + 1}/5 loss={float(loss):.4f}", flush=True)
