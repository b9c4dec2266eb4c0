"""A script that knows nothing of hpctf: it writes TensorBoard scalars with tf.summary to
the folder hpctf names, prints each value it wrote (`SCALAR tag step value`) and keeps a
file in $HPCTF_OUTPUT_DIR."""

import math
import os

import tensorflow as tf

writer = tf.summary.create_file_writer(os.environ["HPCTF_TENSORBOARD_DIR"])
with writer.as_default():
    for step in range(25):
        values = {"loss": 2.0 * math.exp(-step / 6.0) + 0.05, "accuracy": 1.0 - 0.9 * math.exp(-step / 5.0)}
        for tag, value in values.items():
            tf.summary.scalar(tag, value, step=step)
            print(f"SCALAR {tag} {step} {value!r}", flush=True)
writer.close()
with open(os.path.join(os.environ["HPCTF_OUTPUT_DIR"], "summary.txt"), "w") as kept:
    kept.write("25 steps of loss and accuracy\n")
