"""Stands in for a user's training script: records what its task was given (argv, cwd,
environment) as JSON in $STANDIN_DIR/tasks/, and prints the same line to its log.

In a parameter-server job it behaves like TensorFlow's tasks: servers (ps, and workers
when there is a chief) serve until stopped, as ``tf.distribute.Server.join()`` does; the
tasks that drive training start once every server is up, and then end.
"""

import glob
import json
import os
import sys
import time

folder = os.path.join(os.environ["STANDIN_DIR"], "tasks")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, f"{os.getpid()}.json.part"), "w") as f:
    json.dump({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}, f)
os.replace(f.name, f.name.removesuffix(".part"))
print(f"task {os.environ.get('HPCTF_RANK')} recorded", flush=True)

config = json.loads(os.environ.get("TF_CONFIG", "{}"))
cluster = config.get("cluster", {})
servers = ({"ps", "worker"} if "chief" in cluster else {"ps"}) if "ps" in cluster else set()
if config.get("task", {}).get("type") in servers:
    while True:  # serve until hpctf.runtime stops this task
        time.sleep(1)


def servers_up() -> int:
    up = 0
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            task = json.loads(json.load(f)["env"].get("TF_CONFIG", "{}")).get("task", {})
        up += task.get("type") in servers
    return up


deadline = time.monotonic() + 60
while servers_up() < sum(len(cluster[role]) for role in servers):
    if time.monotonic() > deadline:
        sys.exit("task_record: the servers did not come up within 60 s")
    time.sleep(0.05)
