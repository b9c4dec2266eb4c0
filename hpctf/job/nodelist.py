"""Slurm's node lists and tasks-per-node values, expanded to the host of every task."""

from __future__ import annotations

import re

import hostlist

from .taskenv import RuntimeSetupError

_NODELIST_CHARS = re.compile(r"^[A-Za-z0-9_.\-\[\],]+$")


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm node list (``r[1-2]n[08-10],gpu-a.b``) in Slurm's own order.

    Agrees with ``scontrol show hostnames``: several bracket groups per name are
    expanded left to right, zero padding is kept, duplicates are kept in order.
    """
    text = nodelist.strip()
    if not text or not _NODELIST_CHARS.match(text):
        raise RuntimeSetupError(f"malformed Slurm node list {nodelist!r}")
    try:
        return hostlist.expand_hostlist(text, allow_duplicates=True)
    except hostlist.BadHostlist as err:
        raise RuntimeSetupError(f"malformed Slurm node list {nodelist!r}: {err}") from None


_TASK_COUNT = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def expand_tasks_per_node(spec: str) -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE`` / ``SLURM_STEP_TASKS_PER_NODE`` (``2(x3),1``)."""
    counts: list[int] = []
    for part in spec.strip().split(","):
        match = _TASK_COUNT.match(part.strip())
        if not match:
            raise RuntimeSetupError(f"malformed Slurm tasks-per-node value {spec!r}")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


def task_hosts(nodelist: str, tasks_per_node: str) -> list[str]:
    """Host of every task, by task id, for Slurm's default *block* distribution.

    Block distribution (``srun --distribution=block``, the default) gives consecutive
    task ids to a node until its share is used, then moves to the next node.
    """
    hosts = expand_nodelist(nodelist)
    counts = expand_tasks_per_node(tasks_per_node)
    if len(counts) != len(hosts):
        raise RuntimeSetupError(
            f"node list {nodelist!r} has {len(hosts)} nodes but tasks per node "
            f"{tasks_per_node!r} describes {len(counts)}"
        )
    return [host for host, count in zip(hosts, counts) for _ in range(count)]
