"""A sweep's trial that is a Horovod job: every rank gets the trial's --lr and --units;
rank 0 logs val_loss = allreduce-average of lr * (rank + 1) + |units - 16| / 100, that is
lr * (size + 1) / 2 + |units - 16| / 100, a known function of the parameters that only a
working allreduce over every rank gives."""

import argparse
import json
import socket

import horovod.tensorflow as hvd
import tensorflow as tf

import hpctf

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--units", type=int, required=True)
args = parser.parse_args()

hvd.init()
mean = float(hvd.allreduce(tf.constant(args.lr * (hvd.rank() + 1), tf.float64), op=hvd.Average))
print("RANK " + json.dumps({"rank": hvd.rank(), "size": hvd.size(), "host": socket.gethostname()}), flush=True)
hpctf.log_metric("val_loss", mean + abs(args.units - 16) / 100, step=0)
