"""Which Slurm cluster this login node talks to (its ``ClusterName``), read once and cached.

Many sites mount one home directory on several clusters, whose job ids collide: each run
records the cluster it was submitted to, and a job id is looked up on its own cluster.
The slurm.conf Slurm's commands read (``$SLURM_CONF``, else the usual path) names it
(``ClusterName=`` is required there), so no controller is asked, and a controller that is
down costs nothing. Where the file does not have it (a configless site, a name kept in an
included file) ``scontrol show config`` says it, once per process and across processes
through a cache file keyed by slurm.conf's path, size and mtime, so switching
``SLURM_CONF`` between clusters, or a changed configuration, is noticed.

Sites with Slurm's multi-cluster set-up (one slurmdbd for several clusters) reach the
others with ``--clusters``/``-M``: a site profile's ``cluster`` names one, and
:func:`flag` gives the option for a cluster that is not this one.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

from ...schedcall import call

CLUSTER_TIMEOUT_S = 20
UNKNOWN = "unknown"  # a run recorded before hpctf kept clusters, where none answered
DEFAULT_CONF = "/etc/slurm/slurm.conf"
# Slurm's own rule for ClusterName: it lower-cases the name; letters, digits, _ and -.
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_LINE = re.compile(r"^\s*ClusterName\s*=\s*(\S+)\s*$", re.MULTILINE)
_CONF_LINE = re.compile(r"^\s*ClusterName\s*=\s*([^\s#]+)", re.MULTILINE | re.IGNORECASE)


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hpctf" / "slurm-cluster.json"


def parse(text: str) -> str:
    """``scontrol show config`` output -> its ClusterName."""
    match = _LINE.search(text)
    if not match:
        raise ValueError("scontrol show config printed no ClusterName")
    return match.group(1).lower()


def _conf_key() -> str | None:
    conf = os.environ.get("SLURM_CONF") or DEFAULT_CONF
    try:
        stat = os.stat(conf)
    except OSError:
        return None
    return f"{os.path.realpath(conf)}:{stat.st_size}:{int(stat.st_mtime)}"


def from_conf(text: str) -> str | None:
    """slurm.conf's ``ClusterName`` (keys are case-insensitive, Slurm lower-cases the name)."""
    match = _CONF_LINE.search(text)
    return match.group(1).lower() if match else None


@functools.cache  # once per process (per SLURM_CONF); across processes, the cache file
def _detect(key: str | None) -> str | None:
    if key is not None:
        try:
            named = from_conf(Path(key.rsplit(":", 2)[0]).read_text(errors="replace"))
        except OSError:
            named = None
        if named is not None:
            return named
    path = cache_file()
    known: dict[str, str] = {}
    try:
        known = dict(json.loads(path.read_text()))
        if key is not None and isinstance(known.get(key), str):
            return known[key]
    except (OSError, ValueError, TypeError):
        pass
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    try:
        reply = call([scontrol, "show", "config"], CLUSTER_TIMEOUT_S)
        name = parse(reply.stdout) if reply.ok else None
    except (OSError, ValueError):
        name = None
    if name is None or key is None:
        return name
    try:
        from ...private import make_folder, write_file

        make_folder(path.parent)  # owner-only, as the Slurm version cache beside it
        kept = {k: v for k, v in known.items() if os.path.exists(k.rsplit(":", 2)[0])}  # conf files still there
        write_file(path, json.dumps({**kept, key: name}))
    except OSError:
        pass  # a read-only home only costs the next lookup
    return name


def here() -> str | None:
    """The ClusterName of the cluster Slurm's commands reach from here; None where there is
    no Slurm (or it does not answer)."""
    return _detect(_conf_key())


def without_cluster_lines(output: str) -> str:
    """Output of a command asked with ``--clusters`` less its ``CLUSTER: NAME`` lines
    (squeue prints one above its header, 22.05 even with --noheader; not every release
    or command may)."""
    return "".join(line for line in output.splitlines(keepends=True) if not line.startswith("CLUSTER: "))


def flag(cluster: str | None) -> list[str]:
    """``["--clusters", cluster]`` for a cluster other than this one (multi-cluster sites);
    nothing for this one, a run recorded without a cluster, or where no Slurm answers."""
    if cluster in (None, "", UNKNOWN):
        return []
    current = here()
    return [] if current is None or cluster == current else ["--clusters", cluster]
