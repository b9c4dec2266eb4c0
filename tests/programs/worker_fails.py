"""Worker 0 of a parameter-server job exits with 4 at once; every other task serves until
it is stopped, as tf.distribute.Server.join() would."""

import json
import os
import sys
import time

task = json.loads(os.environ["TF_CONFIG"])["task"]
print(f"{task['type']} {task['index']} started", flush=True)
if task == {"type": "worker", "index": 0}:
    print("worker 0 fails with exit code 4", file=sys.stderr, flush=True)
    sys.exit(4)
time.sleep(3600)
