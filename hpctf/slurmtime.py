"""sbatch ``--time`` values: which forms Slurm accepts, and how long they are."""

from __future__ import annotations

import re
from typing import Any

# sbatch --time forms: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S".
_TIME = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d{1,2})(?::(?P<dm>\d{1,2})(?::(?P<ds>\d{1,2}))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d{1,2})(?::(?P<c>\d{1,2}))?)?)$"
)


def valid_time(value: Any) -> bool:
    """An sbatch --time value: minutes, M:S, H:M:S, D-H[:M[:S]], or infinite/unlimited."""
    if not isinstance(value, str):
        return False
    if value.lower() in ("infinite", "unlimited"):
        return True
    m = _TIME.match(value)
    if not m:
        return False
    parts = m.groupdict()
    if parts["days"] is not None:
        return int(parts["dh"]) < 24 and all(int(parts[k] or 0) < 60 for k in ("dm", "ds"))
    # "M", "M:S" or "H:M:S": every field after the first is below 60.
    if parts["c"] is not None:
        return int(parts["b"]) < 60 and int(parts["c"]) < 60
    return parts["b"] is None or int(parts["b"]) < 60


def time_limit_seconds(value: str) -> int | None:
    """A valid sbatch --time value in seconds; None for 'infinite'/'unlimited'."""
    m = _TIME.match(value)
    if m is None:
        return None
    p = {k: int(v) if v is not None else None for k, v in m.groupdict().items()}
    if p["days"] is not None:
        return ((p["days"] * 24 + p["dh"]) * 60 + (p["dm"] or 0)) * 60 + (p["ds"] or 0)
    if p["c"] is not None:  # H:M:S
        return (p["a"] * 60 + p["b"]) * 60 + p["c"]
    return p["a"] * 60 + (p["b"] or 0)  # M or M:S
