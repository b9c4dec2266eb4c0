"""One home on several clusters (#21): each run records its cluster, a job id means the run
of the cluster this login node talks to, another cluster's job is reported as such, old
registries are migrated; a site profile's cluster goes to Slurm's commands as --clusters.

The rules are tested here without a scheduler; the last test submits to two real test
clusters, alpha and beta, whose job ids coincide, under one home."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpctf.cli import cli
from hpctf.clusters import OtherCluster
from hpctf.errors import HpctfError
from hpctf.executors.slurm import cluster as slurm_cluster
from hpctf.registry import Registry, RunRecord

SCONTROL_CONFIG = """Configuration data as of 2026-12-03T22:00:00
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = {name}
CompleteWait            = 0 sec
"""


def at(cluster: str | None, monkeypatch) -> None:
    """This login node talks to ``cluster`` (None: no Slurm answers)."""
    monkeypatch.setattr(slurm_cluster, "here", lambda: cluster)


def record(job_id: str, cluster: str | None, target: str = "slurm", state: str = "COMPLETED") -> RunRecord:
    return RunRecord(
        job_id=job_id,
        target=target,
        name=f"run-{cluster}",
        backend="single",
        shape="1x1",
        run_dir=f"/nowhere/{cluster}/{job_id}",
        log_dir=f"/nowhere/{cluster}/{job_id}/logs",
        command="train.py",
        submitted=time.time(),
        state=state,
        exit_code=0,
        cluster=cluster,
    )


@pytest.fixture
def history(tmp_path, monkeypatch) -> Registry:
    """Job 57 on alpha and on beta (beta's the newer), 58 on beta only, 7 on this machine."""
    monkeypatch.setenv("HPCTF_HOME", str(tmp_path / "home"))
    registry = Registry()
    for job_id, cluster, target in [("57", "alpha", "slurm"), ("57", "beta", "slurm"), ("58", "beta", "slurm")]:
        registry.add(record(job_id, cluster, target))
    registry.add(record("7", "local", "local"))
    return registry


# ---------------------------------------------------------------------------------------
# Which run a job id means
# ---------------------------------------------------------------------------------------


def test_a_job_id_means_the_run_of_the_cluster_this_login_node_talks_to(history, monkeypatch):
    at("alpha", monkeypatch)
    assert history.get("57").cluster == "alpha"  # though beta's was recorded later
    at("beta", monkeypatch)
    assert history.get("57").cluster == "beta"
    assert history.get("7").cluster == "local"


def test_a_job_only_another_cluster_has_is_reported_with_its_cluster(history, monkeypatch):
    at("alpha", monkeypatch)
    with pytest.raises(OtherCluster, match="job 58 was submitted to cluster beta; this login node talks to alpha"):
        history.get("58")
    at("gamma", monkeypatch)
    with pytest.raises(OtherCluster, match="job 57 was submitted to cluster beta; this login node talks to gamma"):
        history.get("57")


def test_cluster_selects_a_run_and_names_the_clusters_that_have_the_id(history, monkeypatch):
    at("alpha", monkeypatch)
    assert history.get("57", cluster="beta").cluster == "beta"
    assert history.get("58", cluster="beta").cluster == "beta"
    with pytest.raises(OtherCluster, match=r"--cluster='gamma': no run with job id '57' .* on beta, alpha"):
        history.get("57", cluster="gamma")
    with pytest.raises(HpctfError, match="no run with job id '99'"):
        history.get("99")


def test_a_cluster_named_by_a_site_profile_is_reachable(history, monkeypatch, tmp_path):
    """Slurm's multi-cluster set-up: a profile's cluster is asked with --clusters from here."""
    config = tmp_path / "config.toml"
    config.write_text('[targets.other]\ncluster = "beta"\n')
    monkeypatch.setenv("HPCTF_CONFIG", str(config))
    at("alpha", monkeypatch)
    assert history.get("58").cluster == "beta"
    assert history.get("57").cluster == "alpha"  # this cluster's run first


def test_commands_that_read_only_files_take_another_clusters_run(history, monkeypatch, tmp_path):
    """outputs, metrics and tensorboard read the run folder, which the shared home holds."""
    from hpctf import tensorboard

    at("alpha", monkeypatch)
    assert history.get("58", anywhere=True).cluster == "beta"
    assert history.get("57", anywhere=True).cluster == "alpha"  # this cluster's run first
    assert [r.cluster for r in tensorboard.select(history, ["58", "57"])] == ["beta", "alpha"]
    for command in (["outputs", "58"], ["metrics", "58"]):
        done = CliRunner().invoke(cli, command)
        assert "/nowhere/beta/58" in done.output and "submitted to cluster" not in done.output


def test_without_slurm_or_for_runs_of_no_known_cluster_the_latest_run_is_meant(history, monkeypatch):
    at(None, monkeypatch)
    assert history.get("57").cluster == "beta"
    history.add(record("58", "unknown"))
    at("alpha", monkeypatch)
    assert history.get("58").cluster == "unknown"


def test_the_cli_reports_another_clusters_job_and_selects_it_with_cluster(history, monkeypatch):
    at("alpha", monkeypatch)
    for command in (["status", "58"], ["logs", "58"], ["cancel", "58"], ["logs", "58_1"]):
        done = CliRunner().invoke(cli, command)
        assert done.exit_code == 2, (command, done.output)
        assert "job 58 was submitted to cluster beta; this login node talks to alpha" in done.output
    done = CliRunner().invoke(cli, ["status", "57", "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["cluster"] == "alpha"
    done = CliRunner().invoke(cli, ["status", "57", "--cluster", "beta", "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["cluster"] == "beta"
    done = CliRunner().invoke(cli, ["status", "57", "--cluster", "beta"])
    assert "cluster    beta" in done.output  # as the history has it: beta is not asked from here
    for command in (["cancel", "57", "--cluster", "beta"], ["logs", "57", "--cluster", "beta", "--follow"]):
        done = CliRunner().invoke(cli, command)
        assert done.exit_code == 2, (command, done.output)
        assert "job 57 was submitted to cluster beta; this login node talks to alpha" in done.output


def test_ls_shows_the_cluster_only_when_the_history_holds_several(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTF_HOME", str(tmp_path / "home"))
    at("alpha", monkeypatch)
    registry = Registry()
    registry.add(record("57", "alpha"))
    alone = CliRunner().invoke(cli, ["ls"])
    assert alone.exit_code == 0 and "CLUSTER" not in alone.output and "57" in alone.output
    assert [r["cluster"] for r in json.loads(CliRunner().invoke(cli, ["ls", "--json"]).output)] == ["alpha"]
    registry.add(record("57", "beta"))
    both = CliRunner().invoke(cli, ["ls"]).output.splitlines()
    assert both[0].split()[:3] == ["JOB", "CLUSTER", "NAME"]
    assert [line.split()[:2] for line in both[1:]] == [["57", "beta"], ["57", "alpha"]]


def test_ls_does_not_ask_this_cluster_about_another_clusters_unfinished_runs(tmp_path, monkeypatch):
    from hpctf import runs

    monkeypatch.setenv("HPCTF_HOME", str(tmp_path / "home"))
    at("alpha", monkeypatch)
    registry = Registry()
    theirs = registry.add(record("57", "beta", state="RUNNING"))
    asked = []
    monkeypatch.setattr("hpctf.executors.slurm.SlurmExecutor.handle", lambda self, r: asked.append(r.job_id))
    runs.refresh(registry, [theirs])
    assert asked == [] and registry.get("57", cluster="beta").state == "RUNNING"


# ---------------------------------------------------------------------------------------
# Registries written before clusters were kept
# ---------------------------------------------------------------------------------------

# The runs table as hpctf wrote it before it kept clusters.
OLD_SCHEMA = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id, target, name, backend, shape, run_dir, log_dir, command, submitted, state, exit_code,
    started, ended, nodes, spec, restarts, sweep
);
CREATE INDEX runs_job ON runs (job_id);
CREATE INDEX runs_submitted ON runs (submitted);
"""


def old_registry(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for job_id, target in [("41", "slurm"), ("42", "slurm"), ("9", "local")]:
        db.execute(
            "INSERT INTO runs (job_id, target, name, backend, shape, run_dir, log_dir, command, submitted,"
            " state, exit_code, spec, restarts) VALUES (?, ?, 'old', 'single', '1x1', '/r', '/r/logs', 'train.py',"
            " 1.0, 'COMPLETED', 0, '{}', 0)",
            (job_id, target),
        )
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("answer, expected", [("alpha", "alpha"), (None, "unknown")])
def test_an_old_registry_gets_the_column_and_its_runs_the_first_answers_cluster(
    tmp_path, monkeypatch, answer, expected
):
    path = old_registry(tmp_path / "registry.sqlite")
    at(answer, monkeypatch)
    registry = Registry(path)
    assert {(r.job_id, r.cluster) for r in registry.runs()} == {("41", expected), ("42", expected), ("9", "local")}
    at("beta", monkeypatch)  # opened again: nothing changes
    assert {r.cluster for r in Registry(path).runs()} == {expected, "local"}
    at(answer, monkeypatch)
    assert registry.get("41").job_id == "41" and registry.get("9").cluster == "local"


def test_a_migration_stopped_while_asking_the_cluster_leaves_no_run_without_one(tmp_path, monkeypatch):
    """Ctrl-C while scontrol is asked (a configless site whose controller is slow): the
    column is not added without its values, and the next open migrates the runs."""
    path = old_registry(tmp_path / "registry.sqlite")

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(slurm_cluster, "here", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Registry(path)
    at("alpha", monkeypatch)
    registry = Registry(path)
    assert sorted((r.job_id, r.cluster) for r in registry.runs()) == [("41", "alpha"), ("42", "alpha"), ("9", "local")]
    assert registry.clusters() == ["alpha", "local"]


def test_an_old_registry_is_migrated_once_by_the_first_of_two_processes(tmp_path, monkeypatch):
    path = old_registry(tmp_path / "registry.sqlite")
    at("alpha", monkeypatch)
    first, second = Registry(path), Registry(path)  # the second finds the column there
    second.add(record("43", "beta"))
    assert sorted((r.job_id, r.cluster) for r in first.runs()) == [
        ("41", "alpha"),
        ("42", "alpha"),
        ("43", "beta"),
        ("9", "local"),
    ]


# ---------------------------------------------------------------------------------------
# ClusterName, asked once
# ---------------------------------------------------------------------------------------


def test_parse_reads_the_cluster_name_lower_cased():
    assert slurm_cluster.parse(SCONTROL_CONFIG.format(name="alpha")) == "alpha"
    assert slurm_cluster.parse(SCONTROL_CONFIG.format(name="Prod_2")) == "prod_2"
    with pytest.raises(ValueError):
        slurm_cluster.parse("SlurmctldPort = 6817\n")


def fake_scontrol(tmp_path, monkeypatch) -> Path:
    """An scontrol on PATH that answers with the ClusterName in $FAKE_CLUSTER, counting calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    script = bin_dir / "scontrol"
    body = SCONTROL_CONFIG.replace("{name}", "$FAKE_CLUSTER")
    script.write_text(f'#!/bin/bash\necho "$@" >>{calls}\ncat <<EOF\n{body}EOF\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_slurm_conf_names_the_cluster_without_asking_the_controller(tmp_path, monkeypatch):
    calls = fake_scontrol(tmp_path, monkeypatch)
    conf = tmp_path / "slurm.conf"
    conf.write_text("SlurmctldPort=6817\n  clustername=Prod_2   # the production cluster\nNodeName=n1\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    assert slurm_cluster.here() == "prod_2" and not calls.exists()


def test_the_cluster_name_is_asked_once_per_slurm_conf_and_kept_across_processes(tmp_path, monkeypatch):
    """A slurm.conf without ClusterName (configless, an included file): scontrol says it."""
    calls = fake_scontrol(tmp_path, monkeypatch)
    confs = {}
    for name in ("alpha", "beta"):
        confs[name] = tmp_path / f"{name}.conf"
        confs[name].write_text(f"Include /etc/slurm/{name}.conf\n")
    for name in ("alpha", "beta", "alpha", "beta"):
        monkeypatch.setenv("SLURM_CONF", str(confs[name]))
        monkeypatch.setenv("FAKE_CLUSTER", name)
        assert slurm_cluster.here() == name
    assert calls.read_text().splitlines() == ["show config", "show config"]
    slurm_cluster._detect.cache_clear()  # a new process: the cache file answers
    monkeypatch.setenv("FAKE_CLUSTER", "wrong")
    assert slurm_cluster.here() == "beta" and len(calls.read_text().splitlines()) == 2
    confs["beta"].write_text("Include /etc/slurm/renamed.conf\n")  # a changed slurm.conf is asked again
    monkeypatch.setenv("FAKE_CLUSTER", "renamed")
    assert slurm_cluster.here() == "renamed" and len(calls.read_text().splitlines()) == 3


def test_the_cluster_name_cache_is_private_under_umask_022(tmp_path, monkeypatch):
    import stat

    fake_scontrol(tmp_path, monkeypatch)
    conf = tmp_path / "configless.conf"
    conf.write_text("Include /etc/slurm/alpha.conf\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    monkeypatch.setenv("FAKE_CLUSTER", "alpha")
    monkeypatch.setattr(slurm_cluster, "cache_file", lambda: tmp_path / "cache" / "hpctf" / "slurm-cluster.json")
    old = os.umask(0o022)
    try:
        assert slurm_cluster.here() == "alpha"
    finally:
        os.umask(old)
    cache = slurm_cluster.cache_file()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600 and stat.S_IMODE(cache.parent.stat().st_mode) == 0o700


def test_no_scontrol_means_no_cluster(tmp_path, monkeypatch):
    """No slurm.conf to read and no scontrol to ask (the test cluster's SLURM_CONF, set in
    this process by a Slurm test before, would name it)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "absent.conf"))
    assert slurm_cluster.here() is None and slurm_cluster.flag("beta") == []


# ---------------------------------------------------------------------------------------
# Slurm's multi-cluster set-up: --clusters
# ---------------------------------------------------------------------------------------


def test_another_clusters_jobs_are_asked_with_clusters(monkeypatch):
    from hpctf.executors.slurm import watch

    at("alpha", monkeypatch)
    assert slurm_cluster.flag("beta") == ["--clusters", "beta"]
    assert slurm_cluster.flag("alpha") == slurm_cluster.flag("unknown") == slurm_cluster.flag(None) == []
    assert watch.watcher_for("alpha") is watch.watcher_for(None) is watch.SlurmRun.watcher
    theirs = watch.watcher_for("beta")
    assert theirs is watch.watcher_for("beta") and theirs is not watch.SlurmRun.watcher
    theirs.register_job("57")
    command = theirs._make_command()
    assert command[:1] == ["sacct"] and command[command.index("--clusters") + 1] == "beta"

    asked = []
    reply = "CLUSTER: beta\n57|PENDING|Priority|N/A\n"
    monkeypatch.setattr(watch, "_answer", lambda argv: asked.append(argv) or reply)
    info = watch.queue_info(["57"], ["--clusters", "beta"])
    assert list(info) == ["57"] and info["57"].reason == "Priority"
    assert asked[0][asked[0].index("--clusters") + 1] == "beta"


def test_a_handle_of_another_clusters_job_uses_that_clusters_watcher_and_pickles(tmp_path, monkeypatch):
    import pickle

    from hpctf.executors.slurm.watch import SlurmRun, watcher_for

    at("alpha", monkeypatch)
    job = SlurmRun(tmp_path, "9057", tasks=range(2), cluster="beta")
    assert job.watcher is watcher_for("beta") and job.task(0).watcher is watcher_for("beta")
    assert "9057" in watcher_for("beta")._registered and "9057" not in SlurmRun.watcher._registered
    again = pickle.loads(pickle.dumps(job))
    assert again.watcher is watcher_for("beta") and again.task(1).watcher is watcher_for("beta")
    assert SlurmRun(tmp_path, "58").watcher is SlurmRun.watcher
    called = []
    monkeypatch.setattr("subprocess.check_call", lambda argv, **kw: called.append(argv))
    again.cancel()  # the API handle's cancel too
    SlurmRun(tmp_path, "58").cancel()
    assert called == [["scancel", "--clusters", "beta", "9057"], ["scancel", "58"]]


def test_a_profiles_cluster_is_checked_and_goes_to_sbatch(tmp_path, monkeypatch, make_spec):
    from hpctf.submission import plan
    from hpctf.targets import load_config

    config = tmp_path / "config.toml"
    config.write_text('[targets.bad]\ncluster = "Alpha cluster"\n')
    with pytest.raises(HpctfError, match=r"targets.bad.cluster=.Alpha cluster.: must be a Slurm ClusterName"):
        load_config([config])
    config.write_text('[targets.multi]\ncluster = "alpha"\n')
    target = load_config([config]).targets["multi"]
    made = plan(make_spec(), home=tmp_path / "home", target=target)
    assert made.command[:3] == ["sbatch", "--parsable", "--clusters=alpha"]
    assert plan(make_spec(), home=tmp_path / "home", target=load_config([]).targets["slurm"]).command[:2] == [
        "sbatch",
        "--parsable",
    ]


def test_requeues_and_dead_nodes_are_read_from_each_runs_own_cluster(tmp_path, monkeypatch):
    """Job 57 of alpha (here) was requeued after node2 died; beta's job 57 ran on beta's
    own node2, which is fine: beta's run is not said to be requeued, and beta's nodes
    are asked of beta's sinfo."""
    from hpctf import executors
    from hpctf.executors.slurm import watch
    from hpctf.exits import requeues

    at("alpha", monkeypatch)
    sinfo = []

    def answer(argv):
        sinfo.append(argv)
        return "node2|down*|Not responding\n" if "--clusters" not in argv else "CLUSTER: beta\nnode2|idle|none\n"

    monkeypatch.setattr(watch, "_answer", answer)
    requeued = {"State": "PENDING", "Restarts": "1", "RequeuedAfter": "NODE_FAIL", "RequeuedNodes": "node[1-2]"}
    monkeypatch.setattr(watch.watcher_for("alpha"), "_info_dict", {"57": requeued})
    monkeypatch.setattr(watch.watcher_for("beta"), "_info_dict", {"57": {"State": "RUNNING", "Restarts": "1"}})
    runs = {}
    for cluster in ("alpha", "beta"):
        run = record("57", cluster, state="NODE_FAIL" if cluster == "beta" else "PENDING")
        run.log_dir, run.nodes, run.restarts = str(tmp_path / cluster), "node[1-2]", 1
        Path(run.log_dir).mkdir()
        runs[cluster] = run
    executors.get("slurm").settled(list(runs.values()))
    assert [2] == list(requeues(runs["alpha"].log_dir, "57"))
    assert requeues(runs["beta"].log_dir, "57") == {}  # alpha's requeue of its job 57 is not beta's
    assert sorted("--clusters" in argv for argv in sinfo) == [False, True]
    beta = next(argv for argv in sinfo if "--clusters" in argv)
    assert beta[beta.index("--clusters") + 1] == "beta"


def test_targets_check_asks_the_profiles_cluster_with_clusters(monkeypatch):
    """scontrol and sinfo get --clusters for a profile naming another cluster; the
    ``CLUSTER: beta`` line that option may add is not read as output."""
    from hpctf.executors.slurm import check
    from hpctf.targets import Target

    at("alpha", monkeypatch)
    asked = []

    def run(*command):
        asked.append(command)
        return 0, "CLUSTER: beta\nnode1|gpu:tesla:1"

    monkeypatch.setattr(check, "_run", run)
    finding = check._gpus(Target(name="far", cluster="beta", gpus_per_node=1), None)
    assert asked == [("sinfo", "--clusters", "beta", "-N", "-h", "-o", "%N|%G")]
    assert (finding.status, finding.detail) == ("ok", "1 node(s) of the cluster have gpu:1")
    asked.clear()
    check._gpus(Target(name="near", cluster="alpha", gpus_per_node=1), None)  # this cluster: no flag
    assert asked == [("sinfo", "-N", "-h", "-o", "%N|%G")]


def test_scancel_of_another_clusters_job_names_it(monkeypatch):
    from hpctf import executors

    at("alpha", monkeypatch)
    called = []
    monkeypatch.setattr("hpctf.executors.slurm.scancel", lambda job_id, clusters=(): called.append((job_id, clusters)))
    slurm = executors.get("slurm")
    slurm.cancel(record("57", "beta"))
    slurm.cancel(record("57", "alpha"))
    assert called == [("57", ["--clusters", "beta"]), ("57", [])]


# ---------------------------------------------------------------------------------------
# Two real clusters under one home
# ---------------------------------------------------------------------------------------

# Says which cluster ran it, then waits to be cancelled.
SIDE_PROGRAM = """import os, sys, time
env = os.environ
print("side", sys.argv[1], "cluster", env.get("SLURM_CLUSTER_NAME"), "job", env.get("SLURM_JOB_ID"), flush=True)
time.sleep(float(sys.argv[2]))
"""
FIRST_JOB_ID = "900000"


@pytest.fixture(scope="module")
def two_clusters(slurm):
    """Two one-node clusters, ClusterName alpha (no GPU) and beta (one), numbering their jobs
    from the same id, with one slurmdbd (alpha's) for both: Slurm's multi-cluster set-up,
    where each reaches the other with --clusters. Stopped at the end of the module, beta first."""
    from hpctf.executors.local.launch import free_port_base

    from .slurmlab import start_cluster, stop_cluster

    started = {}
    try:
        # Its daemons listen on P, P+1 (slurmdbd), P+2 and P+11: a base whose next 20 ports are free.
        port = free_port_base(20, start=18000)
        common = {"ACCT": "1", "NODES": "1", "FIRST_JOB_ID": FIRST_JOB_ID}
        started["alpha"] = start_cluster(
            LAB="/tmp/hpctf-lab-alpha", CLUSTER="alpha", PORT=str(port), GPUS="0", **common
        )
        started["beta"] = start_cluster(
            LAB="/tmp/hpctf-lab-beta",
            CLUSTER="beta",
            PORT=str(free_port_base(20, start=port + 100)),
            DBD_PORT=str(port + 1),  # alpha's slurmdbd
            GPUS="1",
            **common,
        )
    except Exception as err:  # noqa: BLE001 - a failure, never a skip
        for cluster in reversed(started.values()):
            stop_cluster(cluster)
        pytest.fail(str(err))
    yield started
    for cluster in reversed(started.values()):
        stop_cluster(cluster)


def aligned(clusters) -> None:
    """Plain jobs on whichever cluster is behind, until both gave their last job the same id."""

    def plain(name: str) -> int:
        done = clusters[name].run("sbatch", "--parsable", "--output=/dev/null", "--wrap=true")
        return int(done.stdout.strip().split(";")[0])

    last = {name: plain(name) for name in clusters}
    for _ in range(200):
        if last["alpha"] == last["beta"]:
            return
        behind = min(last, key=last.get)
        last[behind] = plain(behind)
    raise AssertionError(f"job ids did not meet: {last}")


@pytest.mark.slurm
def test_two_clusters_under_one_home_each_act_on_their_own_job_of_the_shared_id(two_clusters, tmp_path):
    src = tmp_path / "project"
    src.mkdir()
    (src / "side.py").write_text(SIDE_PROGRAM)
    home, cache = tmp_path / "home", tmp_path / "cache"

    def hpctf(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**two_clusters[name].env, "HPCTF_HOME": str(home), "XDG_CACHE_HOME": str(cache)}
        done = subprocess.run(
            [sys.executable, "-m", "hpctf.cli", *args], capture_output=True, text=True, env=env, cwd=src, timeout=120
        )
        assert not check or done.returncode == 0, (name, args, done.stdout, done.stderr)
        return done

    def status(name: str, job_id: str) -> dict:
        return json.loads(hpctf(name, "status", job_id, "--json").stdout)

    def until(name: str, job_id: str, states: set[str], timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = status(name, job_id)
            if seen["state"] in states:
                return seen
            time.sleep(1)
        raise AssertionError(f"{name}'s job {job_id} still {seen['state']}, not {states}")

    aligned(two_clusters)
    ids = {}
    for name in ("alpha", "beta"):
        out = hpctf(name, "submit", "--target", "slurm", "side.py", name, "600").stdout
        ids[name] = out.split()[2]
    assert ids["alpha"] == ids["beta"], ids
    shared = ids["alpha"]

    for name in ("alpha", "beta"):  # status and logs: each side's own job of that id
        seen = until(name, shared, {"RUNNING"})
        assert (seen["job_id"], seen["cluster"]) == (shared, name)
        deadline = time.monotonic() + 30
        while "side" not in (log := hpctf(name, "logs", shared).stdout) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert log.strip() == f"side {name} cluster {name} job {shared}"

    hpctf("alpha", "cancel", shared)  # cancels alpha's job only
    assert until("alpha", shared, {"CANCELLED"})["cluster"] == "alpha"
    assert two_clusters["alpha"].wait(shared, timeout=30)[0] == "CANCELLED"
    assert two_clusters["beta"].job_state(shared)[0] == "RUNNING"
    assert status("beta", shared)["state"] == "RUNNING"
    hpctf("beta", "cancel", shared)
    assert until("beta", shared, {"CANCELLED"})["cluster"] == "beta"

    # A job only beta has is reported as beta's on alpha, not looked up there.
    only = hpctf("beta", "submit", "--target", "slurm", "side.py", "beta", "0").stdout.split()[2]
    refused = hpctf("alpha", "status", only, check=False)
    assert refused.returncode == 2
    assert f"job {only} was submitted to cluster beta; this login node talks to alpha" in refused.stderr
    assert hpctf("alpha", "logs", only, check=False).returncode == 2
    until("beta", only, {"COMPLETED"})  # its log, in the shared home, is read with --cluster
    assert hpctf("alpha", "logs", only, "--cluster", "beta").stdout.strip() == f"side beta cluster beta job {only}"
    assert hpctf("alpha", "cancel", only, "--cluster", "beta", check=False).returncode == 2

    # The history holds both: ls shows whose each run is.
    listing = json.loads(hpctf("alpha", "ls", "--json").stdout)
    assert [(r["job_id"], r["cluster"]) for r in listing] == [(only, "beta"), (shared, "beta"), (shared, "alpha")]
    table = hpctf("beta", "ls").stdout.splitlines()
    assert table[0].split()[:2] == ["JOB", "CLUSTER"]
    assert [line.split()[:2] for line in table[1:]] == [[only, "beta"], [shared, "beta"], [shared, "alpha"]]


@pytest.mark.slurm
def test_a_profile_sends_the_job_to_another_cluster_of_the_same_slurmdbd(two_clusters, tmp_path, monkeypatch):
    """On alpha's login node a profile names beta (Slurm's multi-cluster set-up): the job
    runs on beta, and sbatch, sacct, squeue and scancel all ask beta with --clusters."""
    from hpctf import schedcall
    from hpctf.executors.slurm import watch

    beta = two_clusters["beta"]
    monkeypatch.setenv("SLURM_CONF", two_clusters["alpha"].env["SLURM_CONF"])
    monkeypatch.setenv("HPCTF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = tmp_path / "config.toml"
    config.write_text('[targets.far]\ncluster = "beta"\n')
    monkeypatch.setenv("HPCTF_CONFIG", str(config))
    # Only this test's jobs: other tests of this process watched jobs of made-up clusters.
    monkeypatch.setattr(watch, "_WATCHERS", {(): watch.ClusterWatcher()})
    import subprocess as real

    asked: list[list[str]] = []

    class Recording:
        TimeoutExpired = real.TimeoutExpired

        @staticmethod
        def run(argv, **kw):
            asked.append(list(argv))
            return real.run(argv, **kw)

    monkeypatch.setattr(schedcall, "subprocess", Recording)
    src = tmp_path / "project"
    src.mkdir()
    (src / "side.py").write_text(SIDE_PROGRAM)
    monkeypatch.chdir(src)

    def hpctf(*args: str) -> str:
        done = CliRunner().invoke(cli, list(args))
        assert done.exit_code == 0, (args, done.output)
        return done.output

    def until(job_id: str, state: str) -> None:
        deadline = time.monotonic() + 90
        while (seen := json.loads(hpctf("status", job_id, "--json"))["state"]) != state:
            if time.monotonic() > deadline:
                queue = beta.run("squeue", "-o", "%i %T %r %N", check=False).stdout  # beta's own view
                raise AssertionError(f"job {job_id} still {seen}, not {state}; beta's queue:\n{queue}")
            time.sleep(1)

    job_id = hpctf("submit", "--target", "far", "side.py", "far", "600").split()[2]
    try:
        assert Registry().get(job_id).cluster == "beta"
        until(job_id, "RUNNING")
        assert beta.job_state(job_id)[0] == "RUNNING"  # beta's own controller runs it
        deadline = time.monotonic() + 30
        while "side" not in (log := hpctf("logs", job_id)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert log.strip() == f"side far cluster beta job {job_id}"
        hpctf("cancel", job_id)
        until(job_id, "CANCELLED")
        assert beta.wait(job_id, timeout=30)[0] == "CANCELLED"
    finally:
        beta.run("scancel", job_id, check=False)
    by_command: dict[str, list[list[str]]] = {}
    for argv in asked:
        by_command.setdefault(Path(argv[0]).name, []).append(argv)
    assert "--clusters=beta" in by_command["sbatch"][0], by_command["sbatch"]
    for command in ("sacct", "scancel"):
        assert by_command[command] and all(argv[argv.index("--clusters") + 1] == "beta" for argv in by_command[command])
    assert all(argv[argv.index("--clusters") + 1] == "beta" for argv in by_command.get("squeue", []))


@pytest.mark.slurm
def test_targets_check_compares_a_profile_with_the_cluster_it_names(two_clusters, tmp_path):
    """On alpha (no GPU), a profile asking for a GPU on beta (one per node) is checked
    against beta's partitions and nodes, and against alpha's without `cluster`."""
    config = tmp_path / "config.toml"
    config.write_text('[targets.far]\ncluster = "beta"\ngpus_per_node = 1\n\n[targets.near]\ngpus_per_node = 1\n')
    env = {**two_clusters["alpha"].env, "HPCTF_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def check(name: str) -> tuple[int, dict[str, dict]]:
        done = subprocess.run(
            [sys.executable, "-m", "hpctf.cli", "targets", "check", name, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.stdout.startswith("{"), (done.stdout, done.stderr)
        report = json.loads(done.stdout)
        return done.returncode, {f["check"]: f for f in report["findings"]}

    code, far = check("far")
    assert code == 0 and far["gpus"]["status"] == "ok" and far["cluster"]["status"] == "ok", far
    assert far["partition"]["status"] == "ok", far
    code, near = check("near")
    assert code == 1 and near["gpus"]["status"] == "MISMATCH", near
    assert "the nodes have no GRES" in near["gpus"]["detail"], near


def test_targets_check_reads_the_named_clusters_release_and_asks_its_configuration_once(monkeypatch):
    """The gpu_request line of another cluster's profile gives that cluster's Slurm release
    (from its `scontrol show config`), not this login node's; the configuration is asked
    once for the two checks that read it."""
    from hpctf.executors.slurm import check
    from hpctf.targets import Target

    at("alpha", monkeypatch)
    config = "SLURM_VERSION           = 24.11.5\nSchedulerType = sched/backfill\nSelectType = select/cons_tres\n"
    answers = {
        ("scontrol", "show", "partition", "-o"): "PartitionName=debug Default=YES Nodes=node1 State=UP\n",
        ("scontrol", "show", "config"): config,
    }
    asked = []

    def run(*command):
        asked.append(command)
        plain = tuple(word for word in command if word not in ("--clusters", "beta"))
        return 0, answers.get(plain, "")

    monkeypatch.setattr(check, "_run", run)
    monkeypatch.setattr("hpctf.executors.slurm.version.detect", lambda: (22, 5, 8))  # this login node's
    far = {f.check: f for f in check.check_slurm(Target(name="far", cluster="beta", gpu_request="gpus-per-node"))}
    gpu_request = far["gpu_request"]
    assert gpu_request.status == check.OK and "this is Slurm 24.11.5 with select/cons_tres" in gpu_request.detail
    assert far["hetjob"].status == check.OK
    assert [c for c in asked if "config" in c] == [("scontrol", "--clusters", "beta", "show", "config")]
    near = {f.check: f for f in check.check_slurm(Target(name="near"))}
    assert near["gpu_request"].detail == "--gres=gpu:N (Slurm 22.05.8)"
