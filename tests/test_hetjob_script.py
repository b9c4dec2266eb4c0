"""Heterogeneous parameter-server jobs (issue 19): the script of each shape (snapshots,
`bash -n`, shellcheck, `sbatch --test-only`), the spec's checks, a site's CPU partition,
the local target's refusal. tests/test_hetjob_cluster.py runs them for real."""

from __future__ import annotations

import re

import pytest

from hpctf.errors import HpctfError, SpecError
from hpctf.render import JobPaths, render_script
from hpctf.targets import Target

from .conftest import SNAPSHOT_PATHS, bash_n, shellcheck
from .test_render import machine_neutral

PS = dict(distributed_backend="ps")
HET_CASES: dict[str, dict] = {
    "het-2ps-cpu-chief-2workers-gpu": dict(
        PS,
        parameter_server_count=2,
        worker_count=2,
        chief=True,
        node_count=2,
        ps_partition="cpu",
        partition="gpu",
        use_gpu=True,
        time="1:00:00",
    ),
    "het-2ps-2nodes-own-needs": dict(
        PS,
        parameter_server_count=2,
        worker_count=2,
        node_count=2,
        ps_node_count=2,
        ps_cpus_per_task=2,
        ps_memory="2000M",
        ps_account="cpu-hours",
        gpus_per_node=2,
        gpu_type="tesla",
    ),
    "het-requeue-ports": dict(
        PS,
        parameter_server_count=1,
        worker_count=2,
        chief=True,
        node_count=2,
        ps_partition="cpu",
        partition="gpu",
        requeue=True,
        time="1:00:00",
        port_base=3000,
    ),
}


def render(make_spec, name: str, paths: JobPaths = SNAPSHOT_PATHS, target: Target | None = None) -> str:
    return render_script(make_spec(**HET_CASES[name]), paths, target=target)


@pytest.mark.parametrize("name", sorted(HET_CASES))
def test_het_script_snapshot(make_spec, snapshot, name):
    assert machine_neutral(render(make_spec, name)) == snapshot


@pytest.mark.parametrize("name", sorted(HET_CASES))
def test_het_script_is_valid_bash_and_shellcheck_clean(make_spec, name):
    script = render(make_spec, name)
    assert bash_n(script).returncode == 0, bash_n(script).stderr
    assert shellcheck(script).returncode == 0, shellcheck(script).stdout


def test_two_components_parameter_servers_first_without_gpus(make_spec):
    script = render(make_spec, "het-2ps-cpu-chief-2workers-gpu")
    lines = re.findall(r"^#SBATCH (.*)$", script, re.M)
    split = lines.index("hetjob")
    ps, workers = lines[:split], lines[split + 1 :]
    assert {"--partition=cpu", "--nodes=1", "--ntasks=2"} <= set(ps) and not any("gres" in f for f in ps)
    assert {"--partition=gpu", "--nodes=2", "--ntasks=3", "--gres=gpu:2"} <= set(workers)
    assert "--output=/shared/project/hpctf-logs/%j_0_log.out" in ps and not any("output" in f for f in workers)
    assert "srun --het-group=0,1 --distribution=block --kill-on-bad-exit=1" in script
    assert "-m hpctf.runtime --ps 2 --workers 2 --chief --het --bind-gpu" in script
    assert '--task-logs "$HPCTF_LOG_DIR"' in script and "export HPCTF_JOB_ID=$SLURM_JOB_ID" in script


def test_the_parameter_servers_own_needs(make_spec):
    lines = re.findall(r"^#SBATCH (.*)$", render(make_spec, "het-2ps-2nodes-own-needs"), re.M)
    ps = lines[: lines.index("hetjob")]
    assert {"--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=2", "--mem=2000M"} <= set(ps)
    assert "--account=cpu-hours" in ps


def test_without_the_new_fields_a_ps_job_is_not_heterogeneous(make_spec):
    script = render_script(make_spec(**PS, parameter_server_count=2, worker_count=2, node_count=2), SNAPSHOT_PATHS)
    assert "hetjob" not in script and "--het" not in script


@pytest.mark.parametrize(
    "fields, said",
    [
        (dict(ps_partition="cpu"), "ps_partition='cpu': is for parameter servers: needs distributed_backend='ps'"),
        (dict(PS, parameter_server_count=0, ps_partition="cpu"), "needs parameter servers"),
        (dict(PS, ps_memory="2G"), "ps_memory='2G': needs ps_partition or ps_node_count"),
        (dict(PS, parameter_server_count=1, ps_node_count=2), "ps_node_count=2: must be <= parameter_server_count (1)"),
        (dict(PS, ps_partition="cpu;rm"), "ps_partition='cpu;rm': must be a partition name"),
        (
            dict(PS, ps_partition="cpu", node_count=2, worker_count=1),
            "node_count=2: cannot place 1 chief/worker tasks on 2 nodes",
        ),
    ],
)
def test_bad_placement_names_the_field(make_spec, fields, said):
    with pytest.raises(SpecError) as err:
        make_spec(**fields)
    assert said in str(err.value)


def test_a_site_names_the_parameter_servers_partition(make_spec):
    from hpctf.targets import apply_target

    site = Target(name="gpu", ps_partition="cpu", partition="gpu")
    het = apply_target(make_spec(**PS, parameter_server_count=1, worker_count=2), site)
    assert het.heterogeneous and het.ps_partition == "cpu" and het.partition == "gpu"
    workers_only = apply_target(make_spec(**PS, parameter_server_count=0, worker_count=2), site)
    assert not workers_only.heterogeneous
    mine = apply_target(make_spec(**PS, ps_partition="bigmem"), site)
    assert mine.ps_partition == "bigmem"


def test_the_local_target_refuses_it(make_spec, tmp_path):
    from hpctf import submission

    spec = make_spec(**HET_CASES["het-2ps-cpu-chief-2workers-gpu"], compute_target="local")
    with pytest.raises(HpctfError, match="no partitions for parameter servers of their own"):
        submission.plan(spec, home=tmp_path)


@pytest.mark.slurm
@pytest.mark.parametrize("name", sorted(HET_CASES))
def test_every_het_script_passes_sbatch_test_only(slurm, shared_dir, make_spec, name):
    paths = JobPaths(workdir=shared_dir, log_dir=shared_dir / "logs")
    paths.log_dir.mkdir()
    script = shared_dir / "job.sbatch"
    script.write_text(render(make_spec, name, paths))
    done = slurm.run("sbatch", "--test-only", str(script), check=False)
    assert done.returncode == 0 and "to start at" in done.stderr, done.stderr
