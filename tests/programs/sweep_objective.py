"""A sweep's trial whose metric is a known function of its parameters.

    score = 1 - (x - 0.3)^2 - (y - 0.6)^2 (- 0.1 when --opt is 'sgd')

logged (hpctf.log_metric) at every step, rising towards that value, so the best trial is
the one nearest x=0.3, y=0.6. ``--fail-above X``: a trial whose x is above X exits 3;
``--sleep S``: each step takes S seconds (for cancelling and pruning a running sweep).
In a requeue job it saves its step to $HPCTF_OUTPUT_DIR/step.json when
hpctf.runtime.should_checkpoint() says so, stops, and resumes from there.
"""

import argparse
import json
import os
import time

import hpctf
from hpctf.runtime import install, restart_count, should_checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, default=0.6)
parser.add_argument("--opt", default="adam")
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--fail-above", type=float, default=None)
args = parser.parse_args()

final = 1 - (args.x - 0.3) ** 2 - (args.y - 0.6) ** 2 - (0.1 if args.opt == "sgd" else 0.0)
print(f"TRIAL x={args.x} y={args.y} opt={args.opt} score={final} trial={os.environ.get('HPCTF_TRIAL')}", flush=True)
if args.fail_above is not None and args.x > args.fail_above:
    raise SystemExit(3)
install()
checkpoint = os.path.join(os.environ["HPCTF_OUTPUT_DIR"], "step.json")
first = 0
if os.path.exists(checkpoint):
    with open(checkpoint) as f:
        first = json.load(f)["step"]
    print(f"RESUMED restart={restart_count()} step={first}", flush=True)
for step in range(first, args.steps):
    hpctf.log_metric("score", final - 0.5 * (args.steps - 1 - step) / args.steps, step)
    time.sleep(args.sleep)
    if should_checkpoint():
        with open(checkpoint, "w") as f:
            json.dump({"step": step + 1}, f)
        print(f"SAVED step={step + 1}", flush=True)
        raise SystemExit(0)
with open(os.path.join(os.environ["HPCTF_OUTPUT_DIR"], "model.txt"), "w") as f:
    f.write(f"x={args.x} y={args.y}\n")
