"""Plain aligned text tables for `hpctf ls` and `hpctf status`.

rich renders these too, but importing it and laying out 50 rows costs ~100 ms, half of
what `hpctf ls` may take over a history of 10,000 runs; columns of text need none of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence


def format_table(header: Sequence[str] | None, rows: Sequence[Sequence[object]], gap: int = 2) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    lines = ([list(header)] if header else []) + cells
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        out.append((" " * gap).join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return "\n".join(out) + "\n"


def when(epoch: float | None) -> str:
    """A moment as a cell: '2024-05-01 12:30:00' ('' for none)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


def duration(seconds: float | None) -> str:
    """A length of time as a cell: '5:03', '1:02:03' ('' for none)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
