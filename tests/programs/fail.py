"""Exits with the code given (default 3) after a line of output."""

import sys

code = int(sys.argv[1]) if len(sys.argv) > 1 else 3
print(f"about to exit {code}", flush=True)
sys.exit(code)
