"""A stand-in for the examples' train.py in ``--quick`` mode: the same protocol, no TensorFlow.

It takes the examples' options (``--epochs``, ``--steps``, ``--checkpoint-dir`` ...) and
behaves like them where the launch is concerned, so quick mode drives the same launchers,
rendered scripts, ``TF_CONFIG`` and server shutdown in seconds:

* with ``TF_CONFIG`` (parameter servers): ps and worker tasks serve until they are stopped,
  as ``tf.distribute.Server.join()`` does; the chief works, prints ``samples/s=N`` and exits;
* without it (Horovod): every rank works and rank 0 prints ``samples/s=N``.

The "work" is a fixed pure-Python loop: its rate says nothing about training.
"""

import argparse
import json
import os
import signal
import time

BATCH = 32


def work(batches: int) -> str:
    start = time.perf_counter()
    for _ in range(batches):
        sum(i * i for i in range(2_000))
    return f"samples/s={batches * BATCH / (time.perf_counter() - start):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args, _ = parser.parse_known_args()

    config = os.environ.get("TF_CONFIG")
    if config:
        task = json.loads(config)["task"]
        if task["type"] != "chief":
            print(f"{task['type']} {task['index']} serving", flush=True)
            while True:
                signal.pause()  # until SIGTERM, like a TensorFlow server
        print(work(args.steps), flush=True)
        return
    rank = next(
        (os.environ[v] for v in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID") if os.environ.get(v)), "0"
    )
    line = work(args.epochs * 10)
    if rank == "0":
        print(line, flush=True)


if __name__ == "__main__":
    main()
