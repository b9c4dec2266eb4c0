"""Parameter-server wiring probe, no TensorFlow: every task listens on its own address
from TF_CONFIG; workers connect to every ps; the chief connects to every ps and worker.

Workers start listening only after they have reached every ps, so once the chief can
reach every worker, all tasks have reported. ps and workers then serve forever, like
tf.distribute.Server.join(); hpctf stops them when the chief is done. Without a chief the
workers drive: they report, keep listening for PROBE_HOLD_S seconds (0), and exit.
"""

import json
import os
import socket
import sys
import time


def connect(address: str, timeout: float = 60.0) -> bool:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


config = json.loads(os.environ["TF_CONFIG"])
role, index = config["task"]["type"], config["task"]["index"]
cluster = config["cluster"]
address = cluster[role][index]
host, port = address.rsplit(":", 1)

peers = cluster.get("ps", []) if role == "worker" else []
if role == "chief":
    peers = cluster.get("ps", []) + cluster.get("worker", [])
connected = {peer: connect(peer) for peer in (cluster.get("ps", []) if role == "worker" else [])}

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port)))  # the node's own address (nodes may share a network namespace)
server.listen(64)
listening_since = time.time()

if role == "chief":
    connected = {peer: connect(peer) for peer in peers}

drives = role == "chief" or (role == "worker" and "chief" not in cluster)
hold = float(os.environ.get("PROBE_HOLD_S", "0")) if drives else 0.0
print(
    "PROBE "
    + json.dumps(
        {
            "tf_config": config,
            "host": socket.gethostname(),
            "listening": address,
            "connected": connected,
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "listening_from": listening_since,
            "listening_until": listening_since + hold,
        }
    ),
    flush=True,
)

if drives:
    time.sleep(hold)
    sys.exit(0 if all(connected.values()) else 1)
while True:  # serve until hpctf stops us
    conn, _ = server.accept()
    conn.close()
