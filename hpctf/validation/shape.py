"""The job's shape: backend, nodes, processes, parameter servers, GPUs, launcher and ports."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .checks import Checks, is_int

if TYPE_CHECKING:
    from ..spec import TensorFlow

BACKENDS = (None, "mpi", "ps")
LAUNCHERS = ("srun", "mpirun")
_PMI = re.compile(r"^[a-z][a-z0-9_]*\Z")


def check_shape(c: Checks, spec: TensorFlow) -> None:
    backend = spec.distributed_backend
    if backend not in BACKENDS:
        c.add("distributed_backend", backend, "must be None (one process), 'mpi' (Horovod) or 'ps' (parameter server)")
        return
    nodes_ok = c.count("node_count", spec.node_count)
    ppn_ok = c.count("process_count_per_node", spec.process_count_per_node)
    c.boolean("use_gpu", spec.use_gpu)
    c.boolean("chief", spec.chief)
    gpus_ok = c.count("gpus_per_node", spec.gpus_per_node, minimum=0, optional=True)
    _check_launch(c, spec)
    if backend is None and nodes_ok and ppn_ok:
        _check_one_process(c, spec)
    if backend == "ps":
        _check_ps_tasks(c, spec, nodes_ok, ppn_ok)
    else:
        for name in PS_FIELDS:
            if getattr(spec, name) is not None:
                c.add(name, getattr(spec, name), "is for parameter servers: needs distributed_backend='ps'")
    if spec.use_gpu is True and backend is not None and nodes_ok and ppn_ok and gpus_ok:
        if not _check_gpus_enough(c, spec):
            return
    if spec.use_gpu is True and spec.gpus_per_node == 0:
        c.add("gpus_per_node", 0, "must be >= 1 when use_gpu=True (or set use_gpu=False)")


def _check_launch(c: Checks, spec: TensorFlow) -> None:
    """How the tasks start: launcher, PMI plugin and the ps backend's ports."""
    if spec.launcher is not None and spec.launcher not in LAUNCHERS:
        c.add("launcher", spec.launcher, "must be 'srun' (srun --mpi=pmix) or 'mpirun' (Open MPI)")
    c.pattern("pmi", spec.pmi, _PMI, "must be an srun --mpi plugin name such as 'pmix', 'pmix_v4' or 'pmi2'")
    if spec.port_base is None:
        pass  # the job's own range, chosen at run time from its job id (hpctf.runtime)
    elif not (is_int(spec.port_base) and 1024 <= spec.port_base <= 65000):
        c.add(
            "port_base", spec.port_base, "must be an integer port between 1024 and 65000 (or None: the job's own range)"
        )
    elif spec.distributed_backend == "ps" and _ps_counts_ok(spec) and spec.port_base + spec.task_count > 65536:
        c.add(
            "port_base",
            spec.port_base,
            f"must leave room for {spec.task_count} ports (task i listens on port_base + i <= 65535)",
        )


def _ps_counts_ok(spec: TensorFlow) -> bool:
    return is_int(spec.worker_count) and is_int(spec.parameter_server_count)


def _check_one_process(c: Checks, spec: TensorFlow) -> None:
    """Without a distributed backend, the job is one process."""
    if spec.node_count * spec.process_count_per_node > 1:
        c.add(
            "process_count_per_node" if spec.process_count_per_node > 1 else "node_count",
            spec.process_count_per_node if spec.process_count_per_node > 1 else spec.node_count,
            f"{spec.node_count * spec.process_count_per_node} processes need a distributed "
            "backend: set distributed_backend='mpi' (Horovod) or 'ps' (parameter server), "
            "or use node_count=1 and process_count_per_node=1",
        )


def _check_ps_tasks(c: Checks, spec: TensorFlow, nodes_ok: bool, ppn_ok: bool) -> None:
    workers_ok = c.count("worker_count", spec.worker_count)
    ps_ok = c.count("parameter_server_count", spec.parameter_server_count, minimum=0)
    if ppn_ok and spec.process_count_per_node != 1:
        c.add(
            "process_count_per_node",
            spec.process_count_per_node,
            "must be 1 with distributed_backend='ps': the tasks are "
            "parameter_server_count + worker_count (+ chief), spread over node_count nodes",
        )
    if workers_ok and ps_ok:
        _check_ps_placement(c, spec)
    if workers_ok and ps_ok and nodes_ok and sum(spec.tasks_on_node()) < spec.node_count:
        c.add(
            "node_count",
            spec.node_count,
            f"cannot place {sum(spec.tasks_on_node())} {'chief/worker' if spec.heterogeneous else 'ps/worker/chief'} "
            f"tasks on {spec.node_count} nodes (every node needs a task): use node_count <= "
            f"{sum(spec.tasks_on_node())} or add workers",
        )


PS_FIELDS = ("ps_partition", "ps_node_count", "ps_cpus_per_task", "ps_memory", "ps_account")


def _check_ps_placement(c: Checks, spec: TensorFlow) -> None:
    """Parameter servers on nodes of their own (a heterogeneous job)."""
    given = [name for name in PS_FIELDS if getattr(spec, name) is not None]
    if not given:
        return
    if spec.parameter_server_count == 0:
        for name in given:
            c.add(name, getattr(spec, name), "needs parameter servers (parameter_server_count >= 1)")
        return
    if not spec.heterogeneous:
        for name in given:
            c.add(name, getattr(spec, name), "needs ps_partition or ps_node_count: where the parameter servers run")
        return
    if c.count("ps_node_count", spec.ps_node_count, optional=True) and spec.ps_nodes > spec.parameter_server_count:
        c.add(
            "ps_node_count",
            spec.ps_node_count,
            f"must be <= parameter_server_count ({spec.parameter_server_count}): every node needs a parameter server",
        )
    c.count("ps_cpus_per_task", spec.ps_cpus_per_task, optional=True)


def _check_gpus_enough(c: Checks, spec: TensorFlow) -> bool:
    """Check that gpus_per_node gives every GPU process on a node a GPU of its own.

    False where the tasks cannot be placed: then no further GPU rule applies."""
    if spec.distributed_backend == "ps" and not _ps_counts_ok(spec):
        return False
    if spec.distributed_backend == "ps" and spec.task_count > 65536:
        return False  # refused above (a port per task); placing them would build huge lists
    if spec.task_count < spec.node_count:
        return False
    needed = spec.gpu_tasks_per_node
    if spec.gpus_per_node is not None and spec.gpus_per_node < needed:
        c.add(
            "gpus_per_node",
            spec.gpus_per_node,
            f"must be >= {needed}: each GPU process gets a GPU of its own and up to {needed} run on one node",
        )
    return True
