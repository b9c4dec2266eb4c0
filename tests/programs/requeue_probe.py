"""A training stand-in for the requeue tests (standard library only, no TensorFlow).

    requeue_probe.py CHECKPOINT STEPS DELAY [--no-install] [--finish-after-restart N]

Counts steps, DELAY seconds each, starting from the step in the JSON file CHECKPOINT if
there is one. When hpctf.runtime.should_checkpoint() says so, it saves the step there and
exits 0. --no-install: never listens for the request (hpctf.runtime starts it with the
signal ignored, so it trains on). --finish-after-restart N: on a restarted attempt, end
successfully after N more steps.
"""

import json
import os
import sys
import time

from hpctf.runtime import install, restart_count, should_checkpoint

path, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
listen = "--no-install" not in sys.argv
finish_after = (
    int(sys.argv[sys.argv.index("--finish-after-restart") + 1]) if "--finish-after-restart" in sys.argv else None
)
if listen:
    install()

step = 0
if os.path.exists(path):
    with open(path) as f:
        step = json.load(f)["step"]
print(f"probe: restart {restart_count()} resuming from step {step}", flush=True)
if finish_after is not None and restart_count() > 0:
    steps = min(steps, step + finish_after)
while step < steps:
    time.sleep(delay)
    step += 1
    if step % 10 == 0:
        print(f"probe: step {step}", flush=True)
    if listen and should_checkpoint():
        with open(f"{path}.tmp", "w") as f:
            json.dump({"step": step}, f)
        os.replace(f"{path}.tmp", path)
        print(f"probe: checkpoint saved at step {step}", flush=True)
        sys.exit(0)
print(f"probe: done at step {step}", flush=True)
