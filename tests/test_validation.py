"""Invalid specs: each error names the field, shows the value and says what is allowed;
all problems are reported at once."""

from __future__ import annotations

import dataclasses

import pytest

import hpctf
from hpctf.errors import SpecError

INVALID = [
    # (fields, field named in the error, words the message must contain)
    (dict(node_count=0), "node_count", "integer >= 1"),
    (dict(node_count="2"), "node_count", "integer >= 1"),
    (dict(process_count_per_node=-1, distributed_backend="mpi"), "process_count_per_node", ">= 1"),
    (dict(process_count_per_node=2), "process_count_per_node", "distributed_backend='mpi'"),
    (dict(node_count=2), "node_count", "distributed_backend='mpi'"),
    (dict(distributed_backend="horovod"), "distributed_backend", "'mpi'"),
    (dict(distributed_backend="ps", worker_count=0), "worker_count", ">= 1"),
    (dict(distributed_backend="ps", parameter_server_count=-1), "parameter_server_count", ">= 0"),
    (dict(distributed_backend="ps", node_count=3, worker_count=1), "node_count", "cannot place 2"),
    (dict(distributed_backend="ps", process_count_per_node=2), "process_count_per_node", "must be 1"),
    (dict(entry_script="missing.py"), "entry_script", "existing file"),
    (dict(entry_script="../outside.py"), "entry_script", "without '..'"),
    (dict(entry_script="/etc/passwd"), "entry_script", "relative"),
    (dict(entry_script=""), "entry_script", "relative to source_directory"),
    (dict(source_directory="/nonexistent/dir"), "source_directory", "existing folder"),
    (dict(time="99:99"), "time", "Slurm time"),
    (dict(time="1-25:00:00"), "time", "Slurm time"),
    (dict(time="one hour"), "time", "Slurm time"),
    (dict(partition="gpu;rm"), "partition", "partition name"),
    (dict(gpu_type="a100 80gb", use_gpu=True), "gpu_type", "GPU type"),
    (dict(gpu_type="a100"), "gpu_type", "needs use_gpu"),
    (dict(account="lab$(id)"), "account", "account name"),
    (dict(qos="high\nrm -rf"), "qos", "QOS name"),
    (dict(memory="lots"), "memory", "size"),
    (dict(cpus_per_task=0), "cpus_per_task", ">= 1"),
    (dict(use_gpu="yes"), "use_gpu", "True or False"),
    (dict(launcher="horovodrun", distributed_backend="mpi"), "launcher", "'srun'"),
    (dict(pmi="PMI X"), "pmi", "srun --mpi"),
    (dict(port_base=80, distributed_backend="ps"), "port_base", "between 1024"),
    (dict(script_params={"--data": {"nested": 1}}), "script_params['--data']", "str, int, float"),
    (dict(script_params={"--lr": float("nan")}), "script_params['--lr']", "finite"),
    (dict(script_params={"": 1}), "script_params", "non-empty"),
    (dict(job_name="two\nlines"), "job_name", "line breaks"),
    (dict(job_name="x" * 201), "job_name", "200"),
    (dict(environment_variables={"1BAD": "x"}), "environment_variables", "shell variable names"),
    (dict(environment_variables={"TF_CONFIG": "{}"}), "environment_variables['TF_CONFIG']", "cannot be overridden"),
    (
        dict(environment_variables={"SLURM_JOB_ID": "1"}),
        "environment_variables['SLURM_JOB_ID']",
        "cannot be overridden",
    ),
    (dict(sbatch_options={"nodes": 4}), "sbatch_options['nodes']", "node_count"),
    (dict(sbatch_options={"mail type": "END"}), "sbatch_options", "flag names"),
    (dict(sbatch_options={"comment": "a\nb"}), "sbatch_options['comment']", "line breaks"),
    (dict(pip_packages=["--index-url=http://evil"]), "pip_packages", "not an option"),
    (dict(pip_packages="numpy"), "pip_packages", "list of strings"),
    (dict(conda_packages=["-c evil"]), "conda_packages", "not an option"),
    (dict(setup=["echo a\necho b"]), "setup", "line breaks"),
    (dict(distributed_backend="mpi", process_count_per_node=4, gpus_per_node=2), "gpus_per_node", ">= 4"),
    (
        dict(distributed_backend="ps", node_count=1, worker_count=3, chief=True, gpus_per_node=2),
        "gpus_per_node",
        ">= 4",
    ),
    (dict(use_gpu=True, gpus_per_node=0), "gpus_per_node", "use_gpu=True"),
    (dict(compute_target="my cluster"), "compute_target", "target name"),
    (dict(arguments=["ok", "nul\x00"]), "arguments", "NUL"),
    (dict(keras="2"), "keras", "'auto'"),
    (
        dict(keras="3", environment_variables={"TF_USE_LEGACY_KERAS": "1"}),
        "environment_variables['TF_USE_LEGACY_KERAS']",
        "contradicts keras='3'",
    ),
]


@pytest.mark.parametrize("fields, field, words", INVALID, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(INVALID)])
def test_invalid_spec_names_field_value_and_rule(make_spec, fields, field, words):
    with pytest.raises(SpecError) as caught:
        make_spec(**fields)
    err = caught.value
    assert field in err.fields, str(err)
    problem = next(p for p in err.problems if p.field == field)
    assert words in problem.allowed, str(problem)
    assert field in str(err) and words in str(err)


def test_at_least_forty_invalid_specs():
    assert len(INVALID) >= 40


def test_every_problem_is_reported_at_once(make_spec):
    with pytest.raises(SpecError) as caught:
        make_spec(node_count=0, time="later", partition="a b", entry_script="nope.py", memory="x")
    assert set(caught.value.fields) >= {"node_count", "time", "partition", "entry_script", "memory"}
    assert "5 problems" in str(caught.value)


def test_entry_script_symlink_out_of_source_is_refused(source_dir, tmp_path):
    (tmp_path / "elsewhere.py").write_text("")
    (source_dir / "link.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(SpecError, match="link out of it"):
        hpctf.TensorFlow(source_directory=source_dir, entry_script="link.py")


@pytest.mark.parametrize("good", ["30", "30:00", "1:00:00", "2-00", "2-12:30", "2-12:30:15", "infinite", "UNLIMITED"])
def test_slurm_time_forms(make_spec, good):
    assert make_spec(time=good).time == good


def test_seed_defaults(source_dir):
    est = hpctf.TensorFlow(source_directory=source_dir, entry_script="train.py")
    assert (est.script_params, est.compute_target, est.conda_packages, est.pip_packages) == ({}, None, (), ())
    assert (est.use_gpu, est.node_count, est.process_count_per_node) == (False, 1, 1)
    assert (est.distributed_backend, est.worker_count, est.parameter_server_count) == (None, 1, 1)


def test_gpus_per_node_implies_gpu_use(make_spec):
    spec = make_spec(distributed_backend="mpi", process_count_per_node=2, gpus_per_node=2)
    assert spec.use_gpu is True and spec.gpus == 2


def test_use_gpu_alone_gives_one_gpu_per_process(make_spec):
    assert make_spec(use_gpu=True).gpus == 1
    assert make_spec(use_gpu=True, distributed_backend="mpi", process_count_per_node=3).gpus == 3
    # 1 ps + 2 workers + chief on 2 nodes: node1 = chief, ps0; node2 = worker0, worker1
    ps = make_spec(use_gpu=True, distributed_backend="ps", node_count=2, worker_count=2, chief=True)
    assert ps.tasks_on_node() == [2, 2] and ps.gpus == 2


def test_backend_spelled_none_or_single_means_one_process(make_spec):
    assert make_spec(distributed_backend="none").distributed_backend is None
    assert make_spec(distributed_backend="single").backend == "single"


def test_script_params_become_arguments(make_spec):
    spec = make_spec(
        script_params={
            "--batch-size": 50,
            "--learning-rate": 0.01,
            "--amp": True,
            "--no": False,
            "--skip": None,
            "--layers": [1, 2],
            "--lr2": 1.0,
        },
        arguments=["--extra", "x y"],
    )
    assert spec.command_arguments() == [
        "--batch-size",
        "50",
        "--learning-rate",
        "0.01",
        "--amp",
        "--layers",
        "1",
        "2",
        "--lr2",
        "1.0",
        "--extra",
        "x y",
    ]


def test_spec_is_frozen_and_changes_revalidate(make_spec):
    spec = make_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.node_count = 3
    with pytest.raises(SpecError):
        spec.with_changes(node_count=0)


@pytest.mark.parametrize(
    "fields, field, words",
    [
        (dict(job_name="a\\'\" --partition=x #"), "job_name", "backslash"),
        (dict(sbatch_options={"comment": "x\\y"}), "sbatch_options['comment']", "backslash"),
        (dict(sbatch_options={"ntasks-per-n": 3}), "sbatch_options['ntasks-per-n']", "--ntasks-per-node"),
        (dict(sbatch_options={"out": "/tmp/x"}), "sbatch_options['out']", "--output"),
        (dict(sbatch_options={"array": "1-3"}), "sbatch_options['array']", "set by hpctf"),
        (dict(sbatch_options={"w": "node1"}), "sbatch_options", "long flag name"),
        (dict(distributed_backend="ps", worker_count=600, port_base=65000), "port_base", "room for 601 ports"),
    ],
)
def test_sbatch_parser_quirks_are_refused(make_spec, fields, field, words):
    with pytest.raises(SpecError) as caught:
        make_spec(**fields)
    assert field in caught.value.fields and words in str(caught.value), str(caught.value)


def test_source_directory_with_a_line_break_is_refused(tmp_path):
    odd = tmp_path / "a'\ntouch PWNED\n#'"
    odd.mkdir()
    (odd / "train.py").write_text("")
    with pytest.raises(SpecError, match="source_directory.*line breaks"):
        hpctf.TensorFlow(source_directory=odd, entry_script="train.py")


def test_log_dir_with_a_line_break_is_refused(make_spec):
    from hpctf.render import JobPaths

    with pytest.raises(hpctf.HpctfError, match="log_dir"):
        JobPaths(workdir=make_spec().source_directory, log_dir="/tmp/x\n#SBATCH --partition=y")


@pytest.mark.parametrize("good", ["0", "16g", "4000", "2T"])
def test_memory_forms(make_spec, good):
    assert make_spec(memory=good).memory == good


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(environment_variables={"X\n": "1"}), "environment_variables"),
        (dict(secret_environment_variables=["TOKEN\n"]), "secret_environment_variables"),
        (dict(partition="gpu\n"), "partition"),
        (dict(memory="16G\n"), "memory"),
        (dict(modules=["cuda/12\n"]), "modules"),
        (dict(sbatch_options={"comment\n": "x"}), "sbatch_options"),
    ],
)
def test_a_name_ending_in_a_line_break_is_refused(make_spec, fields, field):
    """The patterns match whole values: a regex's $ also matches before a final newline,
    which then reached the script (an unquoted mpirun -x NAME, #SBATCH lines)."""
    with pytest.raises(SpecError) as caught:
        make_spec(**fields)
    assert any(f.startswith(field) for f in caught.value.fields), caught.value.fields


def test_a_profiles_cluster_ending_in_a_line_break_is_refused(tmp_path):
    from hpctf.targets import load_config

    config = tmp_path / "config.toml"
    config.write_text('[targets.multi]\ncluster = "alpha\\n"\n')
    with pytest.raises(hpctf.HpctfError, match="targets.multi.cluster"):
        load_config([config])
