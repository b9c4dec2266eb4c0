"""Single-process probe: says where it ran and which GPUs it sees."""

import json
import os
import socket
import sys

print(
    "PROBE "
    + json.dumps({"host": socket.gethostname(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "argv": sys.argv[1:]}),
    flush=True,
)
