"""Node-list expansion and task placement: table tests (the Slurm suite checks the same
table against `scontrol show hostnames`)."""

from __future__ import annotations

import pytest

from hpctf.job.nodelist import expand_nodelist, expand_tasks_per_node, task_hosts
from hpctf.job.taskenv import RuntimeSetupError

# (node list as Slurm writes it, hosts in Slurm's order). Shared with test_slurm_cluster.
NODELIST_CASES = [
    ("node1", ["node1"]),
    ("node[1-3]", ["node1", "node2", "node3"]),
    ("n[009-011]", ["n009", "n010", "n011"]),
    ("n[9-11]", ["n9", "n10", "n11"]),  # Slurm keeps its order: n9 before n10
    ("r[1-2]n[08-10]", ["r1n08", "r1n09", "r1n10", "r2n08", "r2n09", "r2n10"]),
    ("a,b[1,3-4],c", ["a", "b1", "b3", "b4", "c"]),
    ("gpu-a100-[01-02]", ["gpu-a100-01", "gpu-a100-02"]),
    ("cn.rack-1.x[1-2]", ["cn.rack-1.x1", "cn.rack-1.x2"]),
    ("node[1,3],login-2", ["node1", "node3", "login-2"]),
    ("ib-x[01-02],y", ["ib-x01", "ib-x02", "y"]),
    ("n[1-2],n1", ["n1", "n2", "n1"]),
    ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
]


@pytest.mark.parametrize("nodelist, hosts", NODELIST_CASES)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["", "  ", "n[1-", "n]1[", "n[3-1]", "n[a-b]", "n[1-2", "node 1", "n;rm", "n$(x)"])
def test_malformed_nodelist_is_a_clear_error(bad):
    with pytest.raises(RuntimeSetupError, match="malformed Slurm node list"):
        expand_nodelist(bad)


def test_ten_thousand_nodes():
    hosts = expand_nodelist("n[00001-10000]")
    assert len(hosts) == 10000 and hosts[0] == "n00001" and hosts[-1] == "n10000"


@pytest.mark.parametrize(
    "value, counts",
    [("1", [1]), ("4", [4]), ("2(x3)", [2, 2, 2]), ("3,1(x2)", [3, 1, 1]), ("2(x2),1", [2, 2, 1])],
)
def test_tasks_per_node(value, counts):
    assert expand_tasks_per_node(value) == counts


@pytest.mark.parametrize("bad", ["", "x", "2(x)", "2x3", "(x2)", "1,,2"])
def test_malformed_tasks_per_node(bad):
    with pytest.raises(RuntimeSetupError, match="tasks-per-node"):
        expand_tasks_per_node(bad)


def test_task_hosts_block_distribution():
    assert task_hosts("node[1-3]", "2,1(x2)") == ["node1", "node1", "node2", "node3"]


def test_task_hosts_counts_must_match_nodes():
    with pytest.raises(RuntimeSetupError, match="has 3 nodes"):
        task_hosts("node[1-3]", "2(x2)")
