"""Where every task of a ps/worker job runs and listens: its ``TF_CONFIG`` and GPU slot."""

from __future__ import annotations

from collections.abc import Mapping

from .nodelist import expand_nodelist, expand_tasks_per_node, task_hosts
from .ports import DEFAULT_PORT_BASE, job_port_base
from .roles import cluster_roles
from .taskenv import RuntimeSetupError, first, task_rank


class TaskLayout:
    """Where every task of a ps/worker job runs and which address it listens on."""

    # A plain class: dataclasses imports inspect, ~10 ms on every task's start.
    def __init__(self, roles: list[tuple[str, int]], hosts: list[str], port_base: int = DEFAULT_PORT_BASE):
        self.roles, self.hosts, self.port_base = roles, hosts, port_base

    def address(self, task_id: int) -> str:
        # One port per task id, unique across the whole job: tasks that share a node
        # never collide, and neither do tasks of different "nodes" that share a network
        # namespace (containers, the test cluster, the local target).
        return f"{self.hosts[task_id]}:{self.port_base + task_id}"

    def cluster(self) -> dict[str, list[str]]:
        spec: dict[str, list[str]] = {}
        for task_id, (role, _) in enumerate(self.roles):
            spec.setdefault(role, []).append(self.address(task_id))
        return spec

    def tf_config(self, task_id: int) -> dict:
        role, index = self.roles[task_id]
        return {
            "cluster": self.cluster(),
            "task": {"type": role, "index": index},
            "environment": "cloud",
        }

    def tf_config_json(self, task_id: int) -> str:
        """:meth:`tf_config` as compact JSON, as ``json.dumps(..., separators=(",", ":"))``
        writes it. Written by hand: ``json`` costs ~1 ms to import on every task's start;
        host names that JSON would escape (never real ones) go through ``json`` after all."""
        if not _plain("".join(self.hosts)):
            import json

            return json.dumps(self.tf_config(task_id), separators=(",", ":"))
        role, index = self.roles[task_id]
        groups = ",".join(f'"{name}":["' + '","'.join(addresses) + '"]' for name, addresses in self.cluster().items())
        return f'{{"cluster":{{{groups}}},"task":{{"type":"{role}","index":{index}}},"environment":"cloud"}}'

    def gpu_slot(self, task_id: int) -> int | None:
        """Which of its node's GPUs a task uses; ``None`` for parameter servers.

        Parameter servers hold variables in host memory and get no GPU; the other tasks
        on a node take the node's GPUs in task-id order.
        """
        if self.roles[task_id][0] == "ps":
            return None
        host = self.hosts[task_id]
        return sum(1 for other in range(task_id) if self.hosts[other] == host and self.roles[other][0] != "ps")


def _plain(text: str) -> bool:
    """True if JSON writes ``text`` as it is, between quotes (host names, role names)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def layout_from_slurm(
    env: Mapping[str, str], ps: int, workers: int, chief: bool, port_base: int | None = None, het: bool = False
) -> TaskLayout:
    """The layout of the current job step, from the variables ``srun`` sets per task.

    ``port_base`` None: the job's own range, from ``SLURM_JOB_ID`` (:mod:`hpctf.job.ports`).
    ``het``: a step over a heterogeneous job's components (``srun --het-group=0,1``).
    """
    nodelist = first(env, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    per_node = first(env, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
    roles = cluster_roles(ps, workers, chief, het)
    hosts = het_task_hosts(env, nodelist, per_node) if het else task_hosts(nodelist, per_node)
    if len(hosts) != len(roles):
        raise RuntimeSetupError(
            f"the step has {len(hosts)} tasks but the cluster needs {len(roles)} "
            f"({ps} ps + {workers} worker{'s' if workers != 1 else ''}"
            f"{' + chief' if chief else ''}); launch it with srun --ntasks={len(roles)}"
        )
    if port_base is None:
        port_base = job_port_base(env.get("SLURM_JOB_ID"), len(roles))
    return TaskLayout(roles=roles, hosts=hosts, port_base=port_base)


def het_task_hosts(env: Mapping[str, str], nodelist: str, per_node: str) -> list[str]:
    """Host of every task of a step over every component of a heterogeneous job.

    Slurm numbers such a step's tasks component by component (component 0's first), each
    component's block by block over its own nodes; but SLURM_STEP_NODELIST and
    SLURM_STEP_TASKS_PER_NODE list the step's nodes sorted by name (checked on Slurm
    22.05: 2 tasks on node3, then 3 on node[1-2], give node[1-3] and 2,1,2, while tasks 0-1
    run on node3, 2-3 on node1 and 4 on node2). So the step's values say how many tasks
    each node runs, and each
    component's own node list (SLURM_JOB_NODELIST_HET_GROUP_<N>, N < SLURM_HET_SIZE) says
    in which order they are numbered."""
    try:
        size = int(env.get("SLURM_HET_SIZE", ""))
    except ValueError:
        raise RuntimeSetupError(
            "SLURM_HET_SIZE is not set: the job is not heterogeneous (hpctf.runtime --het needs "
            "#SBATCH hetjob components and srun --het-group=0,1)"
        ) from None
    tasks_on = dict(zip(expand_nodelist(nodelist), expand_tasks_per_node(per_node)))
    hosts: list[str] = []
    for group in range(size):
        for node in expand_nodelist(first(env, f"SLURM_JOB_NODELIST_HET_GROUP_{group}")):
            hosts += [node] * tasks_on.pop(node, 0)  # a node in two components: its tasks counted once
    return hosts


def tf_config_for_task(
    env: Mapping[str, str],
    ps: int,
    workers: int,
    chief: bool = False,
    port_base: int | None = None,
) -> dict:
    """The ``TF_CONFIG`` of the current Slurm task (``SLURM_PROCID``)."""
    layout = layout_from_slurm(env, ps, workers, chief, port_base)
    return layout.tf_config(task_rank(env))
