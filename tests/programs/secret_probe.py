"""Says whether this task got the secret: the variable named by SECRET_NAME must hash to
SECRET_SHA256 (the value itself is never in the code, the arguments or the output)."""

import hashlib
import os
import socket

name = os.environ.get("SECRET_NAME", "")
value = os.environ.get(name)
ok = value is not None and hashlib.sha256(value.encode()).hexdigest() == os.environ.get("SECRET_SHA256")
rank = os.environ.get("HPCTF_RANK", "?")
print(
    f"SECRET rank={rank} host={socket.gethostname()} {'ok' if ok else 'missing' if value is None else 'wrong'}",
    flush=True,
)
