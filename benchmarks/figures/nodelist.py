"""Figure 5: node list -> layout -> TF_CONFIG for big allocations, against scontrol.

Node lists are realistic: racks of 64 nodes with a few nodes missing, compressed by
Slurm itself (``scontrol show hostlist``), so they hold many bracket ranges.  hpctf's
cost is measured in-process (that is how each task pays it, once); the plain alternative
is ``scontrol show hostnames LIST``, a subprocess.  hpctf's expansion must also agree
with scontrol's.
"""

from __future__ import annotations

import json

from ..lab import Context
from ..measure import BenchError, Figure, at_most, per_call_ms, run

NUMBER = 5
NAME = "nodelist"
TITLE = "Node list expansion and TF_CONFIG"
NEEDS_SLURM = True


def hostnames(count: int) -> list[str]:
    """``count`` names like ``r03n17``: racks of 64, every 13th node missing (drained)."""
    names, i = [], 0
    while len(names) < count:
        rack, node = divmod(i, 64)
        if i % 13 != 12:
            names.append(f"r{rack + 1:03d}n{node + 1:02d}")
        i += 1
    return names


def measure(ctx: Context) -> list[Figure]:
    from hpctf.job.layout import layout_from_slurm
    from hpctf.job.nodelist import expand_nodelist

    env = ctx.env()
    rounds = ctx.repeats(full=30, quick=3)
    figures = []
    for count in (10, 1_000, 10_000):
        names = hostnames(count)
        nodelist = run(["scontrol", "show", "hostlist", ",".join(names)], env)[1].stdout.strip()
        scontrol = ["scontrol", "show", "hostnames", nodelist]
        if run(scontrol, env)[1].stdout.split() != names or expand_nodelist(nodelist) != names:
            raise BenchError(f"hpctf and scontrol disagree on the {count}-node list {nodelist[:80]}...")
        task_env = {"SLURM_STEP_NODELIST": nodelist, "SLURM_STEP_TASKS_PER_NODE": f"1(x{count})"}
        last = count - 1  # the last task: the longest walk through the layout

        def tf_config(task_env: dict = task_env, count: int = count, last: int = last) -> str:
            layout = layout_from_slurm(task_env, 1, count - 1, False, 2222)
            return json.dumps(layout.tf_config(last), separators=(",", ":"))

        expand, config, plain = [], [], []
        for _ in range(rounds):
            expand.append(per_call_ms(lambda nodes=nodelist: expand_nodelist(nodes)))
            config.append(per_call_ms(tf_config))
            plain.append(run(scontrol, env)[0] * 1000)
        base = "`scontrol show hostnames` of the same list (subprocess)"
        figures += [
            Figure(
                f"nodelist.expand.{count}",
                f"`expand_nodelist`, {count:,} nodes ({len(nodelist)}-char list), in-process",
                "ms",
                expand,
                baseline=base,
                baseline_samples=plain,
            ),
            Figure(
                f"nodelist.tf_config.{count}",
                f"`layout_from_slurm` + `tf_config` (JSON) for one task, "
                f"{count:,} nodes (1 ps + {count - 1:,} workers)",
                "ms",
                config,
                baseline=base,
                baseline_samples=plain,
                goal=at_most(100, "ms") if count == 10_000 else None,
                note="agrees with scontrol" + (f"; TF_CONFIG is {len(tf_config()):,} bytes" if count == 10_000 else ""),
            ),
        ]
    return figures
