"""Rank 1 exits with 3 at once; every other rank hangs (until it is stopped)."""

import os
import sys
import time

rank = int(os.environ["HPCTF_RANK"])
print(f"rank {rank} started", flush=True)
if rank == 1:
    print("rank 1 fails with exit code 3", file=sys.stderr, flush=True)
    sys.exit(3)
time.sleep(3600)
