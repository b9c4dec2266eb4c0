"""The figure groups, in report order.

A group is a module with ``NUMBER`` (its place in the report), ``NAME`` (for
``--only``), ``TITLE``, ``NEEDS_SLURM`` and ``measure(ctx) -> list[Figure]``.  To add
one, write the module (see ``nodelist.py`` for a short example) and list it here.
"""

from . import bootstrap, coldstart, environments, growth, metrics, nodelist, snapshot, submit, sweep, tracking, training

GROUPS = sorted(
    [submit, coldstart, bootstrap, tracking, nodelist, training, environments, growth, metrics, sweep, snapshot],
    key=lambda m: m.NUMBER,
)
