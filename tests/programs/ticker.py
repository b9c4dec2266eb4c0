"""Prints N numbered lines, one every DELAY seconds, then a closing line."""

import sys
import time

count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
for i in range(count):
    print(f"tick {i}", flush=True)
    time.sleep(delay)
print("ticker done", flush=True)
