"""Ignores SIGTERM, so Slurm's time limit ends it with SIGKILL after KillWait."""

import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
for i in range(600):
    print(f"tick {i}", flush=True)
    time.sleep(1)
