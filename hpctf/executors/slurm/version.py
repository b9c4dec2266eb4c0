"""The version of the cluster's Slurm, asked once (``sbatch --version``) and cached.

Some choices depend on it (which GPU request forms exist); a site profile can always
state its own choice instead.  The cache is keyed by the ``sbatch`` binary (path, size,
mtime), so an upgrade is noticed without a lookup on every submit.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

from ...errors import HpctfError
from ...schedcall import call

VERSION_TIMEOUT_S = 20
_VERSION = re.compile(r"slurm(?:-wlm)?\s+(\d+)\.(\d+)(?:\.(\d+))?")


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hpctf" / "slurm-version.json"


def parse(text: str) -> tuple[int, int, int]:
    """``"slurm 22.05.8"`` -> ``(22, 5, 8)``."""
    match = _VERSION.search(text)
    if not match:
        raise ValueError(f"not a Slurm version: {text!r}")
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


@functools.cache  # once per process; across processes, the cache file
def detect() -> tuple[int, int, int] | None:
    """This cluster's Slurm version, or None where there is no ``sbatch``."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return None
    stat = os.stat(sbatch)
    key = f"{os.path.realpath(sbatch)}:{stat.st_size}:{int(stat.st_mtime)}"
    path = cache_file()
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return tuple(cached["version"])  # type: ignore[return-value]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        version = parse(call([sbatch, "--version"], VERSION_TIMEOUT_S).stdout)
    except (OSError, ValueError):
        return None
    try:
        from ...private import make_folder, write_file

        make_folder(path.parent)
        write_file(path, json.dumps({"key": key, "version": version}))
    except OSError:
        pass  # a read-only home only costs the next lookup
    return version


def require(minimum: tuple[int, int], what: str) -> None:
    """Refuse ``what`` when this cluster's Slurm is older than ``minimum``."""
    version = detect()
    if version is not None and version[:2] < minimum:
        found = ".".join(map(str, version))
        raise HpctfError(f"{what} needs Slurm {minimum[0]}.{minimum[1]:02d} or newer; this cluster runs {found}")
