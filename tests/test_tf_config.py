"""TF_CONFIG for ps/worker/chief layouts over 1-3 nodes: derived from Slurm's variables
alone, every task agrees on one cluster, addresses sit on the task's own node, no port
is shared."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpctf.job.bootstrap import task_environment
from hpctf.job.layout import TaskLayout, layout_from_slurm, tf_config_for_task
from hpctf.job.ports import JOB_PORT_RANGE, job_port_base
from hpctf.job.roles import cluster_roles, driver_roles
from hpctf.job.taskenv import RuntimeSetupError


def slurm_env(nodelist: str, per_node: str, procid: int, **extra) -> dict[str, str]:
    env = {"SLURM_STEP_NODELIST": nodelist, "SLURM_STEP_TASKS_PER_NODE": per_node, "SLURM_PROCID": str(procid)}
    env.update(extra)
    return env


LAYOUTS = [
    # (node list, tasks per node, ps, workers, chief)
    ("node1", "2", 1, 1, False),
    ("node1", "4", 1, 2, True),
    ("node[1-2]", "2(x2)", 2, 2, False),
    ("node[1-3]", "2,1(x2)", 1, 2, True),
    ("node[1-3]", "1(x3)", 1, 2, False),
    ("node[1-3]", "3(x3)", 3, 6, False),
    ("n[009-010]", "2,1", 0, 3, False),
    ("node[1-2]", "2(x2)", 0, 3, True),
]


@pytest.mark.parametrize("nodelist, per_node, ps, workers, chief", LAYOUTS)
def test_every_task_agrees_and_is_placed_once(nodelist, per_node, ps, workers, chief):
    from hpctf.job.nodelist import task_hosts

    hosts = task_hosts(nodelist, per_node)
    configs = [
        tf_config_for_task(slurm_env(nodelist, per_node, rank), ps, workers, chief) for rank in range(len(hosts))
    ]

    clusters = {json.dumps(c["cluster"], sort_keys=True) for c in configs}
    assert len(clusters) == 1, "all tasks must see the same cluster"
    cluster = configs[0]["cluster"]
    assert set(cluster) == {r for r, n in (("ps", ps), ("worker", workers), ("chief", int(chief))) if n}
    assert len(cluster.get("ps", [])) == ps and len(cluster["worker"]) == workers

    pairs = [(c["task"]["type"], c["task"]["index"]) for c in configs]
    assert sorted(pairs) == sorted((role, i) for role, addrs in cluster.items() for i in range(len(addrs)))

    addresses = [cluster[t][i] for t, i in pairs]
    assert len(set(addresses)) == len(addresses), "two tasks share an address"
    ports = [a.rsplit(":", 1)[1] for a in addresses]
    assert len(set(ports)) == len(ports), "two tasks share a port"
    for rank, address in enumerate(addresses):
        assert address.rsplit(":", 1)[0] == hosts[rank], "a task's address must be on its own node"
    assert all(c["environment"] == "cloud" for c in configs)


def test_seed_shape():
    env = slurm_env("node[1-3]", "2,1(x2)", 1)
    config = tf_config_for_task(env, ps=1, workers=2, chief=True, port_base=2222)
    assert config == {
        "cluster": {"chief": ["node1:2222"], "ps": ["node1:2223"], "worker": ["node2:2224", "node3:2225"]},
        "task": {"type": "ps", "index": 0},
        "environment": "cloud",
    }


def test_roles_follow_tf_slurm_cluster_resolver_order():
    assert cluster_roles(2, 2, True) == [("chief", 0), ("ps", 0), ("ps", 1), ("worker", 0), ("worker", 1)]


def test_step_variables_win_over_job_variables():
    env = slurm_env("node[2-3]", "1(x2)", 0, SLURM_JOB_NODELIST="node[1-3]", SLURM_TASKS_PER_NODE="1(x3)")
    assert tf_config_for_task(env, 1, 1)["cluster"] == {"ps": ["node2:2222"], "worker": ["node3:2223"]}


def test_without_port_base_each_job_listens_on_a_range_of_its_own():
    env = slurm_env("node[1-3]", "2,1(x2)", 1, SLURM_JOB_ID="4242")
    base = JOB_PORT_RANGE[0] + 4242 * 4  # 4 tasks: job 4242 takes ports 26968-26971
    assert tf_config_for_task(env, ps=1, workers=2, chief=True)["cluster"] == {
        "chief": [f"node1:{base}"],
        "ps": [f"node1:{base + 1}"],
        "worker": [f"node2:{base + 2}", f"node3:{base + 3}"],
    }
    assert tf_config_for_task(env, 1, 2, True, port_base=5000)["cluster"]["chief"] == ["node1:5000"]


@pytest.mark.parametrize("tasks", [1, 2, 3, 7, 64, 1000])
def test_job_port_ranges_of_neighbouring_jobs_are_disjoint_and_in_range(tasks):
    low, high = JOB_PORT_RANGE
    ranges = [range(job_port_base(str(job), tasks), job_port_base(str(job), tasks) + tasks) for job in range(1, 5000)]
    assert all(low <= r.start and r.stop <= high for r in ranges)
    window = min(len(ranges), (high - low) // tasks)  # ids this far apart never share a port
    for a, b in zip(ranges, ranges[1:window]):
        assert not set(a) & set(b)
    assert len({r.start for r in ranges[:window]}) == window


def test_port_base_outside_a_job_is_tfs_usual_default():
    assert job_port_base(None, 3) == job_port_base("", 3) == job_port_base("L1a2b3", 3) == 2222


def test_task_count_mismatch_says_what_to_do():
    with pytest.raises(RuntimeSetupError, match="srun --ntasks=4"):
        layout_from_slurm(slurm_env("node[1-2]", "1(x2)", 0), 1, 2, True, 2222)


def test_outside_slurm_is_a_clear_error():
    with pytest.raises(RuntimeSetupError, match="inside a Slurm job step"):
        tf_config_for_task({}, 1, 1)


@pytest.mark.parametrize("rank, expected", [(0, "5"), (1, ""), (2, ""), (3, "5"), (4, "6"), (5, "7")])
def test_gpu_binding_ps_get_none_others_one_each(rank, expected):
    # node[1-2], 3 tasks each: node1 = chief, ps0, ps1; node2 = worker0, worker1, worker2
    env = slurm_env("node[1-2]", "3(x2)", rank, CUDA_VISIBLE_DEVICES="5,6,7")
    assert task_environment(env, ps=2, workers=3, chief=True, bind_gpu=True)["CUDA_VISIBLE_DEVICES"] == expected


def test_parameter_servers_never_see_a_gpu_even_without_bind():
    env = slurm_env("node1", "2", 0, CUDA_VISIBLE_DEVICES="0")
    assert task_environment(env, ps=1, workers=1)["CUDA_VISIBLE_DEVICES"] == ""


def test_mpi_rank_binding_uses_local_rank():
    env = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4", "CUDA_VISIBLE_DEVICES": "0,1"}
    out = task_environment(env, bind_gpu=True)
    assert out == {"HPCTF_RANK": "3", "HPCTF_LOCAL_RANK": "1", "HPCTF_WORLD_SIZE": "4", "CUDA_VISIBLE_DEVICES": "1"}


def test_mpirun_rank_variables_win_over_inherited_slurm_procid():
    env = {
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "OMPI_COMM_WORLD_RANK": "2",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "4",
    }
    out = task_environment(env)
    assert (out["HPCTF_RANK"], out["HPCTF_LOCAL_RANK"], out["HPCTF_WORLD_SIZE"]) == ("2", "1", "4")


def test_gpu_requested_but_none_visible_is_a_clear_error():
    with pytest.raises(RuntimeSetupError, match="no CUDA_VISIBLE_DEVICES"):
        task_environment({"SLURM_PROCID": "0"}, bind_gpu=True)


def test_driver_roles():
    assert driver_roles(ps=1, chief=True) == {"chief"}
    assert driver_roles(ps=1, chief=False) == {"worker"}
    assert driver_roles(ps=0, chief=False) == {"chief", "worker"}


def test_more_gpu_tasks_than_gpus_is_an_error_not_a_shared_gpu():
    env = slurm_env("node1", "3", 2, CUDA_VISIBLE_DEVICES="0,1")
    with pytest.raises(RuntimeSetupError, match="needs GPU #2 of its node but Slurm gave it 2"):
        task_environment(env, ps=0, workers=3, bind_gpu=True)


@given(
    st.lists(st.text(min_size=1), min_size=1, max_size=4),
    st.integers(0, 2),
    st.integers(0, 3),
    st.booleans(),
    st.integers(1024, 65000),
)
def test_tf_config_json_is_what_json_writes(hosts, ps, workers, chief, port_base):
    # The bootstrap writes TF_CONFIG without importing json (TaskLayout.tf_config_json);
    # any host name, even one JSON must escape, comes out as json.dumps writes it.
    roles = cluster_roles(ps, workers, chief) or [("worker", 0)]
    layout = TaskLayout(roles=roles, hosts=[hosts[i % len(hosts)] for i in range(len(roles))], port_base=port_base)
    for task_id in range(len(roles)):
        assert layout.tf_config_json(task_id) == json.dumps(layout.tf_config(task_id), separators=(",", ":"))


@pytest.mark.parametrize("nodelist, per_node, ps, workers, chief", LAYOUTS)
def test_task_environment_tf_config_is_compact_json(nodelist, per_node, ps, workers, chief):
    env = slurm_env(nodelist, per_node, 0)
    expected = tf_config_for_task(env, ps, workers, chief)
    written = task_environment(env, ps=ps, workers=workers, chief=chief)["TF_CONFIG"]
    assert written == json.dumps(expected, separators=(",", ":"))
