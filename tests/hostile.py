"""A corpus of hostile strings for every user field that reaches a job script (issue 8).

Every string that a shell (or Python, or sbatch) could execute tries to create the
marker file, so "it was executed" is observable: ``corpus(marker)`` builds the strings
around the marker's absolute path. File names cannot hold a '/', so
``filename_variant`` points the same strings at a marker *name* relative to the
current folder (look for it with ``marker_name_found``).

Used by tests/test_hostile_input.py and tests/test_spec_properties.py.
"""

from __future__ import annotations

import os
from pathlib import Path

# The longest name one folder entry may have (ext4, tmpfs, xfs: 255 bytes).
NAME_MAX = 255


def corpus(marker: str) -> list[str]:
    """At least 50 hostile strings, each once; ``marker`` is a path that must never appear."""
    t = f"touch {marker}"
    strings = [
        # -- command substitution, backticks, and both mixed with quotes
        f"$({t})",
        f"`{t}`",
        f"'$({t})'",
        f'"$({t})"',
        f"'`{t}`'",
        f"\"'$({t})'\"",
        f"'$(…)' $({t}) \"`{t}`\"",
        f"$($({t}))",
        f"$(printf '\\x74ouch {marker}' | sh)",
        f"${{x:-$({t})}}",
        f"<({t})",
        f">({t})",
        # -- quotes, balanced and not
        "'",
        '"',
        "'\"'\"'",
        "it's",
        'say "hi"',
        "'\\''",
        '"\\""',
        f"'; {t}; '",
        f'"; {t}; "',
        "‘curly’ “quotes”",
        # -- line breaks
        f"x\n{t}",
        f"\n{t}\n",
        f"x\r{t}",
        f"x\r\n{t}",
        f"\n#SBATCH --wrap='{t}'",
        # -- command separators, pipes and redirections
        f"; {t}",
        f"&& {t}",
        f"|| {t}",
        f"| tee {marker}",
        f"& {t} &",
        f"> {marker}",
        f">> {marker}",
        f"2>{marker}",
        "< /etc/passwd",
        f"x; exec {t}",
        # -- globs, variables, arithmetic, brace and tilde expansion, history
        "*",
        "?",
        "[a]",
        "/*",
        "~",
        "~root/x",
        "$HOME",
        "${HOME}",
        "$VAR",
        "$((1+1))",
        "$[1+1]",
        f"${{IFS}}{t}",
        "{a,b}",
        "{1..3}",
        f"{{{t},}}",
        "!!",
        "!$",
        "^old^new",
        "$'\\x41'",
        # -- option injection and things a parser may take for syntax
        "--output=/x",
        "-o",
        "-",
        "--",
        "-h",
        "--help",
        "-n 99",
        "--job-name=x",
        f"-cimport os;os.system('{t}')",
        "=",
        "a=b",
        "@file",
        # -- Slurm file name patterns and #SBATCH parser words
        "%j",
        "%%",
        "%x_%u_%N_%t",
        "%",
        "hetjob",
        "#SBATCH --partition=x",
        # -- comments and backslashes
        f"# {t}",
        f"x #{t}",
        "\\",
        "\\n",
        "a\\",
        f"\\$({t})",
        # -- non-ASCII: accents, CJK, emoji, bidirectional and zero-width characters
        "é",
        "中文",
        "😀",
        "\u202eRTL override\u202c",
        "\u200fעברית\u200e",
        "a\u200bb",
        "\ufeffbom",
        "\u2028line separator",
        "\x85next line",
        "bytes \udcff\udcfe that are not UTF-8",  # what Python makes of them (surrogateescape)
        # -- whitespace, control characters and size
        "a\tb",
        "a\x00b",
        "\x1b[31mred",
        "\x7f",
        "\x0b\x0c",
        "",
        " ",
        "  padded  ",
        "x" * 10_000,
        "$" * 300,
    ]
    seen: set[str] = set()
    return [s for s in strings if not (s in seen or seen.add(s))]


def filename_variant(value: str, marker: str, marker_name: str) -> str | None:
    """``value`` as one folder entry's name: the marker becomes ``marker_name``, relative
    to wherever it would run; None where no file system can hold the name."""
    name = value.replace(marker, marker_name)
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return None
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        return None
    return name


def marker_name_found(marker_name: str, *roots: str | os.PathLike) -> list[Path]:
    """Files called ``marker_name`` under any of ``roots`` (searched recursively)."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if (root / marker_name).exists():
            found.append(root / marker_name)
        if root.is_dir():
            found += [p for p in root.rglob(marker_name)]
    return sorted(set(found))
