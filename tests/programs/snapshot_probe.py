"""Waits, then prints what its own code snapshot holds (the test edits the source meanwhile)."""

import pathlib
import sys
import time

time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 3)
import helper  # noqa: E402  - imported after the wait on purpose

print(f"helper says {helper.VALUE}; data says {pathlib.Path('data.txt').read_text().strip()}", flush=True)
