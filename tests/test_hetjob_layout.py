"""Heterogeneous parameter-server jobs (issue 19): each task's TF_CONFIG and GPU from a step
over both components, as Slurm 22.05 describes it (checked on the test cluster)."""

from __future__ import annotations

import json

import pytest

from hpctf.job.bootstrap import task_environment
from hpctf.job.roles import cluster_roles, driver_ranks
from hpctf.job.taskenv import RuntimeSetupError

# 2 parameter servers on node3 (component 0), chief + 2 workers on node[1-2] (component 1):
# Slurm sorts the step's node list and its tasks per node by name, but numbers the tasks
# component by component: 0-1 on node3, 2-3 on node1, 4 on node2.
STEP = {
    "SLURM_STEP_NODELIST": "node[1-3]",
    "SLURM_STEP_TASKS_PER_NODE": "2,1,2",
    "SLURM_HET_SIZE": "2",
    "SLURM_JOB_NODELIST_HET_GROUP_0": "node3",
    "SLURM_JOB_NODELIST_HET_GROUP_1": "node[1-2]",
    "SLURM_JOB_ID": "41",
    "CUDA_VISIBLE_DEVICES": "0,1",
}
LOCAL = {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}


def task(rank: int) -> dict[str, str]:
    env = {**STEP, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(LOCAL[rank])}
    return task_environment(env, ps=2, workers=2, chief=True, port_base=3000, bind_gpu=True, het=True)


def test_every_task_of_a_heterogeneous_step_gets_its_own_role_host_and_gpu():
    seen = {rank: json.loads(task(rank)["TF_CONFIG"]) for rank in range(5)}
    cluster = seen[0]["cluster"]
    assert cluster == {
        "ps": ["node3:3000", "node3:3001"],
        "chief": ["node1:3002"],
        "worker": ["node1:3003", "node2:3004"],
    }
    assert all(config["cluster"] == cluster for config in seen.values())
    roles = [(c["task"]["type"], c["task"]["index"]) for c in seen.values()]
    assert roles == [("ps", 0), ("ps", 1), ("chief", 0), ("worker", 0), ("worker", 1)]
    assert [task(rank)["CUDA_VISIBLE_DEVICES"] for rank in range(5)] == ["", "", "0", "1", "0"]


def test_the_drivers_of_a_heterogeneous_job_are_its_second_components():
    assert cluster_roles(2, 2, True, het=True)[:3] == [("ps", 0), ("ps", 1), ("chief", 0)]
    assert driver_ranks(2, 2, True, het=True) == [2]
    assert driver_ranks(2, 2, False, het=True) == [2, 3]


def test_het_outside_a_heterogeneous_job_says_so():
    env = {k: v for k, v in STEP.items() if k != "SLURM_HET_SIZE"}
    with pytest.raises(RuntimeSetupError, match="SLURM_HET_SIZE is not set: the job is not heterogeneous"):
        task_environment({**env, "SLURM_PROCID": "0"}, ps=2, workers=2, chief=True, het=True)
