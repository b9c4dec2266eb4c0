"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .lab import REPO


def _first_line(cmd: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=15, env=env, cwd=REPO)
        return done.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(env: dict[str, str]) -> dict:
    import hpctf

    debian = Path("/etc/debian_version")
    commit = _first_line(["git", "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "status", "--porcelain", "--untracked-files=no"]) not in ("unknown", "")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "debian": debian.read_text().strip() if debian.exists() else "not Debian",
        "kernel": platform.release(),
        "slurm": _first_line(["sbatch", "--version"], env),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "hpctf": f"{hpctf.__version__} (git {commit}{', uncommitted changes' if dirty else ''})",
        "load_average": os.getloadavg(),
    }
