"""Plain aligned text tables for `hpctf ls` and `hpctf status`.

rich renders these too, but importing it and laying out 50 rows costs ~100 ms, half of
what `hpctf ls` may take over a history of 10,000 runs; columns of text need none of it.
"""

from __future__ import annotations

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
