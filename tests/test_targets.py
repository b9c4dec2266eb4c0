"""Compute targets: TOML site profiles, how they merge into a job, `hpctf targets [check]`,
site templates and the GPU request form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.errors import HpctfError
from hpctf.executors import MISMATCH, OK, SKIPPED
from hpctf.executors.slurm import check as slurm_check
from hpctf.executors.slurm.check import gres_entries, minutes, mpi_plugins
from hpctf.render import render_script
from hpctf.targets import Target, apply_target, get_target, load_config

from .conftest import SNAPSHOT_PATHS, bash_n, shellcheck

HPCTF = str(Path(sys.executable).with_name("hpctf"))

USER_TOML = """
default = "gpu"

[targets.gpu]
partition = "gpu"
account = "ml"
gpu_type = "a100"
gpus_per_node = 4
modules = ["cuda/12.2"]
env_cache = "envs"
time = "12:00:00"
sbatch_options = { comment = "from the user file", mail-type = "END" }
"""

PROJECT_TOML = """
[targets.gpu]
partition = "gpu-long"
modules = ["cuda/12.2", "cudnn/9"]
sbatch_options = { comment = "from the project" }

[targets.cpu]
executor = "local"
python = "/usr/bin/python3"
"""


@pytest.fixture
def config_files(tmp_path, monkeypatch):
    user = tmp_path / "config" / "hpctf" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(USER_TOML)
    project = tmp_path / "project-root"
    (project / "sub").mkdir(parents=True)
    (project / "hpctf.toml").write_text(PROJECT_TOML)
    monkeypatch.setenv("HPCTF_CONFIG", str(user))
    monkeypatch.chdir(project / "sub")  # the project file is found in a parent folder
    return user, project / "hpctf.toml"


def test_project_file_overrides_the_user_file_key_by_key(config_files):
    user, project = config_files
    config = load_config()
    assert config.files == (user, project) and config.default == "gpu"
    gpu = config.targets["gpu"]
    assert gpu.partition == "gpu-long"  # project wins
    assert gpu.account == "ml" and gpu.gpu_type == "a100" and gpu.time == "12:00:00"  # kept from the user file
    assert gpu.modules == ("cuda/12.2", "cudnn/9")
    assert gpu.sbatch_options == {"comment": "from the project"}  # a table is one value
    assert gpu.env_cache == str(user.parent / "envs")  # relative to the file that says it
    assert str(user) in gpu.source and str(project) in gpu.source
    assert config.targets["cpu"].executor == "local"
    assert set(config.targets) >= {"slurm", "local", "gpu", "cpu"}
    assert get_target(None, config).name == "gpu"


def test_a_profile_gives_defaults_and_the_estimator_wins(config_files, make_spec):
    target = get_target("gpu")
    spec = apply_target(
        make_spec(use_gpu=True, partition="debug", modules=["openmpi/4"], sbatch_options={"mail-type": "FAIL"}), target
    )
    assert spec.partition == "debug"  # the estimator's own value
    assert (spec.account, spec.time, spec.gpu_type, spec.compute_target) == ("ml", "12:00:00", "a100", "gpu")
    assert spec.modules == ("cuda/12.2", "cudnn/9", "openmpi/4")
    assert spec.sbatch_options == {"comment": "from the project", "mail-type": "FAIL"}
    assert apply_target(spec, target) == spec  # applying twice changes nothing
    cpu_job = apply_target(make_spec(), target)
    assert cpu_job.gpu_type is None  # a GPU type only for jobs that use GPUs
    script = render_script(make_spec(use_gpu=True, compute_target="gpu"), SNAPSHOT_PATHS)
    for line in (
        "#SBATCH --partition=gpu-long",
        "#SBATCH --account=ml",
        "#SBATCH --gres=gpu:a100:1",
        "module load cuda/12.2 cudnn/9",
    ):
        assert line in script


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[targets.x]\npartiton = "gpu"\n', "targets.x.partiton: unknown key (did you mean 'partition'?)"),
        ("[targets.x]\ngpus_per_node = 0\n", "targets.x.gpus_per_node=0: must be an integer >= 1"),
        ('[targets.x]\nexecutor = "cloud"\n', "targets.x.executor='cloud': must be 'slurm' or 'local'"),
        ('[targets.x]\nmodules = "cuda"\n', "targets.x.modules='cuda': must be a list of non-empty strings"),
        ('[targets.x]\ngpu_request = "gpus"\n', "targets.x.gpu_request='gpus'"),
        ('[targets.x]\ntime = "12h"\n', "targets.x.time='12h': must be a Slurm time such as '30'"),
        ('default = "nope"\n', "default='nope'"),
        ("[targets.x\n", "not valid TOML"),
        ('partition = "gpu"\n', "unknown top-level key(s) ['partition']"),
    ],
)
def test_bad_profile_files_name_the_file_key_and_value(tmp_path, toml, message):
    path = tmp_path / "hpctf.toml"
    path.write_text(toml)
    with pytest.raises(HpctfError) as err:
        load_config([path])
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_profile_value_the_job_cannot_use_is_reported_with_the_target(tmp_path, make_spec):
    path = tmp_path / "hpctf.toml"
    path.write_text('[targets.bad]\nsbatch_options = { ntasks = "4" }\n')
    target = load_config([path]).targets["bad"]
    with pytest.raises(HpctfError, match=r"(?s)target 'bad' .*sbatch_options\['ntasks'\]"):
        apply_target(make_spec(), target)


def test_unknown_target_lists_the_defined_ones(config_files, make_spec):
    with pytest.raises(HpctfError, match=r"compute_target='nowhere': unknown target; defined: cpu, gpu, local, slurm"):
        render_script(make_spec(compute_target="nowhere"), SNAPSHOT_PATHS)


def test_targets_command_lists_profiles_and_marks_the_default(config_files):
    done = subprocess.run([HPCTF, "targets"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line for line in done.stdout.splitlines()[1:]
    }
    assert lines["gpu"].startswith("*") and "gpu-long" in lines["gpu"] and "gpu:a100:4" in lines["gpu"]
    assert "local" in lines["cpu"]
    data = json.loads(subprocess.run([HPCTF, "targets", "--json"], capture_output=True, text=True).stdout)
    assert data["default"] == "gpu" and {t["name"] for t in data["targets"]} >= {"gpu", "cpu", "slurm", "local"}


def test_bad_profile_file_is_a_usage_error_on_the_cli(tmp_path, monkeypatch):
    (tmp_path / "hpctf.toml").write_text('[targets.x]\npartiton = "gpu"\n')
    (tmp_path / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    for args in (["targets"], ["render", "--target", "x", "train.py"]):
        done = subprocess.run([HPCTF, *args], capture_output=True, text=True)
        assert done.returncode == 2 and "did you mean 'partition'" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------
# Site templates
# ---------------------------------------------------------------------------------------


def test_site_template_changes_one_section_and_keeps_the_rest(make_spec, tmp_path):
    site = tmp_path / "site-templates"
    site.mkdir()
    (site / "base.sbatch.j2").write_text(
        '{% extends "builtin/base.sbatch.j2" %}\n'
        "{% block directives %}{{ super() }}#SBATCH --mail-type=END,FAIL\n{% endblock %}\n"
    )
    for backend in ({}, {"distributed_backend": "mpi", "process_count_per_node": 2}):
        spec = make_spec(**backend)
        plain = render_script(spec, SNAPSHOT_PATHS).splitlines()
        site_script = render_script(spec, SNAPSHOT_PATHS, template_dirs=[site])
        lines = site_script.splitlines()
        assert [line for line in lines if line not in plain] == ["#SBATCH --mail-type=END,FAIL"]
        assert [line for line in plain if line not in lines] == []
        assert bash_n(site_script).returncode == 0 and shellcheck(site_script).returncode == 0


def test_profile_templates_folder_is_used_by_name(make_spec, tmp_path):
    site = tmp_path / "tpl"
    site.mkdir()
    (site / "single.sbatch.j2").write_text(
        '{% extends "builtin/single.sbatch.j2" %}{% block setup %}{{ super() }}echo site single\n{% endblock %}'
    )
    path = tmp_path / "hpctf.toml"
    path.write_text('[targets.site]\ntemplates = "tpl"\n')
    target = load_config([path]).targets["site"]
    assert "echo site single" in render_script(make_spec(), SNAPSHOT_PATHS, target=target)
    assert "echo site single" not in render_script(make_spec(distributed_backend="mpi"), SNAPSHOT_PATHS, target=target)


# ---------------------------------------------------------------------------------------
# GPU request form and the parsers `targets check` relies on
# ---------------------------------------------------------------------------------------


def test_gpu_request_form_follows_the_profile(make_spec, monkeypatch):
    spec = make_spec(gpus_per_node=2, gpu_type="a100")
    assert "#SBATCH --gres=gpu:a100:2\n" in render_script(spec, SNAPSHOT_PATHS, target=Target(name="t"))
    per_node = Target(name="t", gpu_request="gpus-per-node")
    monkeypatch.setattr("hpctf.executors.slurm.version.detect", lambda: (23, 11, 4))
    script = render_script(spec, SNAPSHOT_PATHS, target=per_node)
    assert "#SBATCH --gpus-per-node=a100:2\n" in script and "--gres" not in script
    monkeypatch.setattr("hpctf.executors.slurm.version.detect", lambda: (18, 8, 9))
    with pytest.raises(HpctfError, match=r"--gpus-per-node .* needs Slurm 19.05 or newer; this cluster runs 18.8.9"):
        render_script(spec, SNAPSHOT_PATHS, target=per_node)
    # A CPU job asks for no GPUs in any form: the profile's form (and Slurm's age) is moot.
    cpu_script = render_script(make_spec(), SNAPSHOT_PATHS, target=per_node)
    assert "--gpus-per-node" not in cpu_script and "--gres" not in cpu_script


def test_the_gres_name_of_the_profile_is_the_one_requested(make_spec):
    spec = make_spec(gpus_per_node=2, gpu_type="a100")
    script = render_script(spec, SNAPSHOT_PATHS, target=Target(name="t", gres_name="nvgpu"))
    assert "#SBATCH --gres=nvgpu:a100:2\n" in script


def test_slurm_version_parsing():
    from hpctf.executors.slurm.version import parse

    assert parse("slurm 24.11.1\n") == (24, 11, 1)
    assert parse("slurm-wlm 22.05.8") == (22, 5, 8)
    with pytest.raises(ValueError):
        parse("sbatch: error: no config")


def test_check_parsers():
    assert gres_entries("gpu:tesla:2(S:0-1),gpu:a100:4,mps:100") == [
        ("gpu", "tesla", 2),
        ("gpu", "a100", 4),
        ("mps", None, 100),
    ]
    assert gres_entries("(null)") == []
    assert (minutes("1-02:00:00"), minutes("30"), minutes("1:30:00"), minutes("UNLIMITED")) == (1560, 30, 90, None)
    listing_2205 = "MPI plugin types are...\n\tpmix\n\tnone\n\tpmi2\nspecific pmix plugin versions available: pmix_v4\n"
    assert mpi_plugins(listing_2205) == {"pmix", "none", "pmi2", "pmix_v4"}
    assert mpi_plugins("srun: MPI types are...\nsrun: none\nsrun: pmi2\n") == {"none", "pmi2"}


PARTITIONS = (
    "PartitionName=debug Default=YES MaxTime=UNLIMITED Nodes=node[1-3] State=UP\n"
    "PartitionName=cpu MaxTime=UNLIMITED Nodes=node1 State=UP\n"
    "PartitionName=gpu MaxTime=UNLIMITED Nodes=node[2-3] State=DOWN\n"
)


def fake_slurm(monkeypatch, scheduler: str) -> None:
    """scontrol answering for a cluster with SchedulerType=``scheduler``; the rest bland."""
    config = f"Configuration data as of ...\nSchedulerType           = {scheduler}\nSelectType = select/cons_tres\n"
    answers = {("scontrol", "show", "partition", "-o"): PARTITIONS, ("scontrol", "show", "config"): config}
    monkeypatch.setattr(slurm_check, "_run", lambda *command: (0, answers.get(command, "")))
    monkeypatch.setattr("hpctf.executors.slurm.version.detect", lambda: (23, 11, 4))


def test_targets_check_says_when_the_scheduler_cannot_start_heterogeneous_jobs(monkeypatch):
    fake_slurm(monkeypatch, "sched/builtin")
    findings = {f.check: f for f in slurm_check.check_slurm(Target(name="t", partition="debug", ps_partition="cpu"))}
    assert findings["hetjob"].status == MISMATCH
    assert findings["hetjob"].detail.startswith(
        "SchedulerType=sched/builtin: Slurm starts heterogeneous jobs only from the backfill scheduler"
    )
    assert "would stay pending" in findings["hetjob"].detail and "sched/backfill" in findings["hetjob"].detail
    assert findings["ps_partition"].status == OK and findings["ps_partition"].detail.startswith("cpu (state UP")
    # No ps_partition in the profile: said, but not a mismatch (plain jobs start anyway).
    plain = {f.check: f for f in slurm_check.check_slurm(Target(name="t", partition="debug"))}
    assert plain["hetjob"].status == SKIPPED and "sched/builtin" in plain["hetjob"].detail
    assert "ps_partition" not in plain


def test_targets_check_finds_a_missing_or_down_ps_partition(monkeypatch):
    fake_slurm(monkeypatch, "sched/backfill")
    findings = {f.check: f for f in slurm_check.check_slurm(Target(name="t", ps_partition="cpus"))}
    assert findings["hetjob"] == slurm_check.Finding(
        "hetjob", OK, "SchedulerType=sched/backfill: Slurm starts heterogeneous jobs"
    )
    assert findings["ps_partition"].status == MISMATCH
    assert findings["ps_partition"].detail == (
        "no partition 'cpus' for the parameter servers; the cluster has cpu, debug, gpu"
    )
    down = {f.check: f for f in slurm_check.check_slurm(Target(name="t", ps_partition="gpu"))}
    assert down["ps_partition"].status == MISMATCH and "state DOWN" in down["ps_partition"].detail


# ---------------------------------------------------------------------------------------
# `hpctf targets check` against the real test cluster
# ---------------------------------------------------------------------------------------

CHECK_TOML = """
[targets.lab]
partition = "debug"
gpu_type = "tesla"
gpus_per_node = 2
time = "30"
pmi = "pmix"
qos = "normal"
ps_partition = "cpu"
cluster = "{cluster}"

[targets.wrong]
partition = "gpus"
gpu_type = "a100"
pmi = "pmi_bogus"

[targets.elsewhere]
partition = "gpus"
cluster = "nowhere"

[targets.short]
partition = "hpctf-short"
time = "2:00:00"
gpus_per_node = 3
"""


@pytest.mark.slurm
def test_targets_check_against_the_cluster_reports_every_mismatch(slurm, tmp_path):
    from hpctf.executors.slurm.cluster import from_conf

    lab_cluster = from_conf(Path(slurm.env["SLURM_CONF"]).read_text())
    (tmp_path / "hpctf.toml").write_text(CHECK_TOML.replace("{cluster}", lab_cluster))

    def check(name: str) -> tuple[int, dict[str, tuple[str, str]]]:
        done = subprocess.run(
            [HPCTF, "targets", "check", name, "--json"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**slurm.env, "HPCTF_CONFIG": "/nonexistent"},
            timeout=120,
        )
        data = json.loads(done.stdout)
        return done.returncode, {f["check"]: (f["status"], f["detail"]) for f in data["findings"]}

    code, good = check("lab")
    assert code == 0 and all(status != "MISMATCH" for status, _ in good.values()), good
    assert good["gpus"][0] == good["partition"][0] == good["pmi"][0] == "ok"
    assert good["hetjob"] == ("ok", "SchedulerType=sched/backfill: Slurm starts heterogeneous jobs")
    assert good["ps_partition"][0] == "ok" and good["ps_partition"][1].startswith("cpu (state UP")

    code, wrong = check("wrong")
    assert code == 1
    assert wrong["partition"] == ("MISMATCH", "no partition 'gpus'; the cluster has cpu, debug, gpu")
    assert wrong["gpus"][0] == "MISMATCH" and "gpu:a100:1" in wrong["gpus"][1] and "gpu:tesla:2" in wrong["gpus"][1]
    assert wrong["pmi"][0] == "MISMATCH" and "pmix" in wrong["pmi"][1]
    assert good["cluster"] == ("ok", f"{lab_cluster} exists")
    # A cluster the database does not know: its partitions cannot be asked, and this
    # cluster's are not compared instead; accounting says why.
    code, elsewhere = check("elsewhere")
    assert code == 1 and set(elsewhere) == {"scheduler", "cluster"}, elsewhere
    assert elsewhere["scheduler"][0] == "MISMATCH" and "No cluster 'nowhere'" in elsewhere["scheduler"][1]
    assert elsewhere["cluster"] == ("MISMATCH", "no cluster 'nowhere' in the accounting database")

    # A partition with a time limit (made for this test, not kept by slurmctld's state).
    slurm.run("scontrol", "create", "PartitionName=hpctf-short", "Nodes=node1", "MaxTime=60", "State=UP")
    try:
        code, short = check("short")
    finally:
        slurm.run("scontrol", "delete", "PartitionName=hpctf-short", check=False)
    assert code == 1 and short["partition"][0] == "ok"
    assert short["time"] == (
        "MISMATCH",
        "2:00:00 is over the partition limit 01:00:00: jobs would stay pending (PartitionTimeLimit)",
    )
    assert short["gpus"][0] == "MISMATCH"  # 3 GPUs per node: the nodes have 2

    human = subprocess.run(
        [HPCTF, "targets", "check", "wrong"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**slurm.env, "HPCTF_CONFIG": "/nonexistent"},
        timeout=120,
    )
    assert human.returncode == 1 and "3 mismatch(es)" in human.stdout  # partition, gpus, pmi


def test_the_sample_site_file_in_examples_loads_and_renders_every_target(make_spec):
    """examples/site/hpctf.toml is what the README shows: it must stay valid."""
    sample = Path(__file__).resolve().parent.parent / "examples" / "site" / "hpctf.toml"
    config = load_config([sample])
    assert config.default == "gpu" and {"gpu", "gpu-container", "cpu", "laptop"} <= set(config.targets)
    for name in ("gpu", "gpu-container", "cpu", "laptop"):
        target = config.targets[name]
        script = render_script(
            make_spec(use_gpu=name.startswith("gpu"), distributed_backend="mpi", process_count_per_node=2),
            SNAPSHOT_PATHS,
            target=target,
        )
        assert bash_n(script).returncode == 0 and shellcheck(script).returncode == 0, name
    site = render_script(make_spec(), SNAPSHOT_PATHS, target=config.targets["gpu"])
    assert (
        "placements.txt" in site
        and "module load cuda/12.2 openmpi/4.1.5" in site
        and "#SBATCH --mail-type=FAIL" in site
    )
