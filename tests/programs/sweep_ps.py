"""A sweep's trial on the parameter-server backend, without TensorFlow: every task reads
its TF_CONFIG; parameter servers and workers serve until hpctf stops them, as
tf.distribute.Server.join() would; the chief logs loss = (lr - 0.01)^2 * 1e4 + ps count,
and what it saw of the cluster, then ends the job."""

import argparse
import json
import os
import socket
import time

import hpctf

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
args = parser.parse_args()

config = json.loads(os.environ["TF_CONFIG"])
role = config["task"]["type"]
print("TASK " + json.dumps({"role": role, "host": socket.gethostname(), "lr": args.lr}), flush=True)
if role != "chief":
    time.sleep(600)  # stopped by hpctf once the chief is done
cluster = config["cluster"]
hpctf.log_metric("loss", (args.lr - 0.01) ** 2 * 1e4 + len(cluster["ps"]), step=0)
print("CLUSTER " + json.dumps({k: len(v) for k, v in cluster.items()}), flush=True)
