"""The figure groups, in report order.

A group is a module with ``NUMBER`` (its place in the report), ``NAME`` (for
``--only``), ``TITLE``, ``NEEDS_SLURM`` and ``measure(ctx) -> list[Figure]``.  To add
one, write the module (see ``nodelist.py`` for a short example) and list it here.

Still to come (number reserved): 7 pip environment caching (``pip_packages``).
"""

from . import bootstrap, coldstart, growth, nodelist, submit, tracking, training

GROUPS = sorted([submit, coldstart, bootstrap, tracking, nodelist, training, growth], key=lambda m: m.NUMBER)
