"""Invalid specs (issue 8): each is refused with ONE clear message that names the field,
shows the value and says what is allowed, both from Python (``hpctf.TensorFlow(...)``,
then ``hpctf.submit``) and, where the command line can say it, from ``hpctf submit``,
which exits with 2 and no traceback. Nothing is submitted (a stand-in sbatch records any
call; a few cases also meet the real one on the test cluster) and nothing is written
under HPCTF_HOME.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

import hpctf
from hpctf.cli import cli
from hpctf.errors import HpctfError, SpecError

HPCTF = str(Path(sys.executable).with_name("hpctf"))
LONG_NAME = "x" * 201
LONG_COMMENT = "c" * 1025

# (id, estimator fields, `hpctf submit` options before the entry script (None: the command
#  line cannot say it), the field the message names, the value it shows, what it allows).
# Entry scripts are relative to the case's project folder (see `project` below).
CASES = [
    ("negative-nodes", dict(node_count=-1), ["--nodes=-1"], "node_count", "-1", "integer >= 1"),
    ("zero-nodes", dict(node_count=0), ["--nodes", "0"], "node_count", "0", "integer >= 1"),
    ("nodes-as-text", dict(node_count="2"), ["--nodes", "two"], "node_count", "'2'", "integer"),
    (
        "zero-procs",
        dict(distributed_backend="mpi", process_count_per_node=0),
        ["--backend", "mpi", "--procs-per-node", "0"],
        "process_count_per_node",
        "0",
        "integer >= 1",
    ),
    (
        "procs-without-backend",
        dict(process_count_per_node=2),
        ["--procs-per-node", "2"],
        "process_count_per_node",
        "2",
        "distributed_backend='mpi'",
    ),
    (
        "backend-horovod",
        dict(distributed_backend="horovod"),
        ["--backend", "horovod"],
        "distributed_backend",
        "'horovod'",
        "'mpi'",
    ),
    (
        "launcher-ssh",
        dict(distributed_backend="mpi", launcher="ssh"),
        ["--backend", "mpi", "--launcher", "ssh"],
        "launcher",
        "'ssh'",
        "'srun'",
    ),
    ("bad-time", dict(time="25:99:99"), ["--time", "25:99:99"], "time", "'25:99:99'", "HH:MM:SS"),
    ("time-in-words", dict(time="one hour"), ["-t", "one hour"], "time", "'one hour'", "Slurm time"),
    ("memory-with-space", dict(memory="16 GB"), ["--mem", "16 GB"], "memory", "'16 GB'", "'16G'"),
    (
        "partition-with-space",
        dict(partition="gpu nodes"),
        ["-p", "gpu nodes"],
        "partition",
        "'gpu nodes'",
        "partition name",
    ),
    (
        "account-injection",
        dict(account="lab;rm -rf ~"),
        ["-A", "lab;rm -rf ~"],
        "account",
        "'lab;rm -rf ~'",
        "account name",
    ),
    ("qos-substitution", dict(qos="$(id)"), ["--qos", "$(id)"], "qos", "'$(id)'", "QOS name"),
    (
        "constraint-with-space",
        dict(constraint="a b"),
        ["--constraint", "a b"],
        "constraint",
        "'a b'",
        "constraint expression",
    ),
    (
        "env-name-digit",
        dict(environment_variables={"1BAD": "x"}),
        ["--env", "1BAD=x"],
        "environment_variables",
        "'1BAD'",
        "shell variable names",
    ),
    (
        "env-slurm",
        dict(environment_variables={"SLURM_X": "1"}),
        ["--env", "SLURM_X=1"],
        "environment_variables['SLURM_X']",
        "'1'",
        "cannot be overridden",
    ),
    (
        "env-tf-config",
        dict(environment_variables={"TF_CONFIG": "{}"}),
        ["--env", "TF_CONFIG={}"],
        "environment_variables['TF_CONFIG']",
        "'{}'",
        "cannot be overridden",
    ),
    ("env-nul", dict(environment_variables={"A": "x\x00y"}), None, "environment_variables['A']", "'x\\x00y'", "NUL"),
    (
        "env-without-value",
        dict(environment_variables={"A": None}),
        ["--env", "A"],
        "environment_variables['A']",
        "None",
        "a string or a number",
    ),
    (
        "sbatch-ntasks",
        dict(sbatch_options={"ntasks": 4}),
        ["--sbatch", "ntasks=4"],
        "sbatch_options['ntasks']",
        "4",
        "process_count_per_node",
    ),
    (
        "sbatch-prefix",
        dict(sbatch_options={"out": "/tmp/x"}),
        ["--sbatch", "out=/tmp/x"],
        "sbatch_options['out']",
        "'/tmp/x'",
        "(--output: hpctf's run folder) and cannot be overridden",
    ),
    (
        "sbatch-help",
        dict(sbatch_options={"help": None}),
        ["--sbatch", "help"],
        "sbatch_options['help']",
        "None",
        "(--help: hpctf's submission) and cannot be overridden",
    ),
    (
        "sbatch-one-letter",
        dict(sbatch_options={"w": "node1"}),
        ["--sbatch", "w=node1"],
        "sbatch_options",
        "'w'",
        "long flag name",
    ),
    (
        "sbatch-key-space",
        dict(sbatch_options={"mail type": "END"}),
        ["--sbatch", "mail type=END"],
        "sbatch_options",
        "'mail type'",
        "flag names",
    ),
    (
        "sbatch-backslash",
        dict(sbatch_options={"comment": "a\\b"}),
        ["--sbatch", "comment=a\\b"],
        "sbatch_options['comment']",
        "'a\\\\b'",
        "backslash",
    ),
    (
        "sbatch-too-long",
        dict(sbatch_options={"comment": LONG_COMMENT}),
        ["--sbatch", f"comment={LONG_COMMENT}"],
        "sbatch_options['comment']",
        "'ccccc",
        "at most 1024",
    ),
    (
        "sbatch-dict-value",
        dict(sbatch_options={"comment": {"a": 1}}),
        None,
        "sbatch_options['comment']",
        "{'a': 1}",
        "a string, an integer",
    ),
    ("gpus-negative", dict(gpus_per_node=-1), ["--gpus-per-node=-1"], "gpus_per_node", "-1", "integer >= 0"),
    (
        "gpu-without-gpus",
        dict(use_gpu=True, gpus_per_node=0),
        ["--use-gpu", "--gpus-per-node", "0"],
        "gpus_per_node",
        "0",
        "use_gpu=True",
    ),
    (
        "gpu-type-without-gpus",
        dict(gpu_type="a100"),
        ["--gpu-type", "a100"],
        "gpu_type",
        "'a100'",
        "needs use_gpu=True",
    ),
    (
        "too-few-gpus",
        dict(distributed_backend="mpi", process_count_per_node=4, gpus_per_node=2),
        ["--backend", "mpi", "--procs-per-node", "4", "--gpus-per-node", "2"],
        "gpus_per_node",
        "2",
        ">= 4",
    ),
    ("use-gpu-as-text", dict(use_gpu="yes"), None, "use_gpu", "'yes'", "True or False"),
    (
        "port-80",
        dict(distributed_backend="ps", port_base=80),
        ["--backend", "ps", "--port-base", "80"],
        "port_base",
        "80",
        "between 1024 and 65000",
    ),
    (
        "ports-run-out",
        dict(distributed_backend="ps", worker_count=600, port_base=65000),
        ["--backend", "ps", "--workers", "600", "--port-base", "65000"],
        "port_base",
        "65000",
        "room for 601 ports",
    ),
    (
        "ps-two-procs",
        dict(distributed_backend="ps", process_count_per_node=2),
        ["--backend", "ps", "--procs-per-node", "2"],
        "process_count_per_node",
        "2",
        "must be 1",
    ),
    (
        "ps-too-many-nodes",
        dict(distributed_backend="ps", node_count=3),
        ["--backend", "ps", "--nodes", "3"],
        "node_count",
        "3",
        "cannot place 2",
    ),
    (
        "ps-no-workers",
        dict(distributed_backend="ps", worker_count=0),
        ["--backend", "ps", "--workers", "0"],
        "worker_count",
        "0",
        "integer >= 1",
    ),
    (
        "ps-negative-ps",
        dict(distributed_backend="ps", parameter_server_count=-1),
        ["--backend", "ps", "--ps=-1"],
        "parameter_server_count",
        "-1",
        "integer >= 0",
    ),
    (
        "pmi-with-space",
        dict(distributed_backend="mpi", pmi="PMI X"),
        ["--backend", "mpi", "--pmi", "PMI X"],
        "pmi",
        "'PMI X'",
        "srun --mpi plugin",
    ),
    ("cpus-zero", dict(cpus_per_task=0), ["--cpus-per-task", "0"], "cpus_per_task", "0", "integer >= 1"),
    ("missing-entry", dict(entry_script="missing.py"), ["missing.py"], "entry_script", "'missing.py'", "existing file"),
    ("entry-is-a-folder", dict(entry_script="sub"), ["sub"], "entry_script", "'sub'", "existing file"),
    (
        "entry-with-dotdot",
        dict(entry_script="../train.py"),
        ["../train.py"],
        "entry_script",
        "'../train.py'",
        "without '..'",
    ),
    (
        "entry-absolute",
        dict(entry_script="/etc/passwd"),
        None,
        "entry_script",
        "'/etc/passwd'",
        "relative to source_directory",
    ),
    (
        "entry-links-out",
        dict(entry_script="link.py"),
        ["link.py"],
        "entry_script",
        "'link.py'",
        "inside source_directory",
    ),
    (
        "entry-ignored",
        dict(source_directory="ignored", entry_script="train.py"),
        ["--source-dir", "{ignored}", "train.py"],
        "entry_script",
        "'train.py'",
        ".hpctfignore",
    ),
    (
        "source-missing",
        dict(source_directory="/nonexistent/code"),
        ["--source-dir", "/nonexistent/code", "train.py"],
        "source_directory",
        "'/nonexistent/code'",
        "existing folder",
    ),
    (
        "pip-option",
        dict(pip_packages=["--index-url=http://evil"]),
        ["--pip=--index-url=http://evil"],
        "pip_packages",
        "'--index-url=http://evil'",
        "not an option",
    ),
    ("pip-as-string", dict(pip_packages="numpy"), None, "pip_packages", "'numpy'", "list of strings"),
    (
        "conda-option",
        dict(conda_packages=["-c evil"]),
        ["--conda=-c evil"],
        "conda_packages",
        "'-c evil'",
        "not an option",
    ),
    ("module-option", dict(modules=["--force"]), ["--module=--force"], "modules", "'--force'", "module name"),
    ("module-with-space", dict(modules=["cuda 12"]), ["--module", "cuda 12"], "modules", "'cuda 12'", "module name"),
    (
        "params-dict-value",
        dict(script_params={"--data": {"nested": 1}}),
        None,
        "script_params['--data']",
        "{'nested': 1}",
        "str, int, float",
    ),
    ("params-nan", dict(script_params={"--lr": float("nan")}), None, "script_params['--lr']", "nan", "finite"),
    ("params-empty-key", dict(script_params={"": 1}), None, "script_params", "''", "non-empty"),
    ("argument-nul", dict(arguments=["a\x00b"]), None, "arguments", "'a\\x00b'", "NUL"),
    ("argument-not-utf8", dict(arguments=["\udcff"]), ["train.py", "\udcff"], "arguments", "'\\udcff'", "UTF-8"),
    ("job-name-newline", dict(job_name="a\nb"), ["-J", "a\nb"], "job_name", "'a\\nb'", "line breaks"),
    ("job-name-long", dict(job_name=LONG_NAME), ["-J", LONG_NAME], "job_name", "'xxxxx", "at most 200"),
    ("job-name-backslash", dict(job_name="a\\b"), ["-J", "a\\b"], "job_name", "'a\\\\b'", "backslash"),
    (
        "setup-newline",
        dict(setup=["echo a\necho b"]),
        ["--setup", "echo a\necho b"],
        "setup",
        "'echo a\\necho b'",
        "line breaks",
    ),
    ("python-option", dict(python="-cprint(1)"), ["--python=-cprint(1)"], "python", "'-cprint(1)'", "not an option"),
    (
        "container-runtime-docker",
        dict(container_image="/x.sif", container_runtime="docker"),
        ["--container-image", "/x.sif", "--container-runtime", "docker"],
        "container_runtime",
        "'docker'",
        "'apptainer'",
    ),
    (
        "container-image-option",
        dict(container_image="--help"),
        ["--container-image=--help"],
        "container_image",
        "'--help'",
        "not an option",
    ),
    (
        "mount-relative",
        dict(container_image="/x.sif", container_mounts=["data:/data"]),
        ["--container-image", "/x.sif", "--mount", "data:/data"],
        "container_mounts",
        "'data:/data'",
        "absolute paths",
    ),
    (
        "mount-without-image",
        dict(container_mounts=["/a:/b"]),
        ["--mount", "/a:/b"],
        "container_mounts",
        "['/a:/b']",
        "need container_image",
    ),
    (
        "pip-in-container",
        dict(container_image="/x.sif", pip_packages=["six"]),
        ["--container-image", "/x.sif", "--pip", "six"],
        "pip_packages",
        "['six']",
        "install the packages in the image",
    ),
    (
        "pyxis-mpirun",
        dict(distributed_backend="mpi", launcher="mpirun", container_image="x", container_runtime="pyxis"),
        ["--backend", "mpi", "--launcher", "mpirun", "--container-image", "x", "--container-runtime", "pyxis"],
        "launcher",
        "'mpirun'",
        "Pyxis",
    ),
    (
        "grace-without-requeue",
        dict(signal_grace=60),
        ["--signal-grace", "60"],
        "signal_grace",
        "60",
        "needs requeue=True",
    ),
    (
        "grace-longer-than-time",
        dict(requeue=True, time="1", signal_grace=120),
        ["--requeue", "--time", "1", "--signal-grace", "120"],
        "signal_grace",
        "120",
        "shorter than the time limit",
    ),
    (
        "restarts-negative",
        dict(requeue=True, max_restarts=-1),
        ["--requeue", "--max-restarts=-1"],
        "max_restarts",
        "-1",
        "integer >= 0",
    ),
    (
        "requeue-signal-flag",
        dict(requeue=True, sbatch_options={"signal": "B:USR1@60"}),
        ["--requeue", "--sbatch", "signal=B:USR1@60"],
        "sbatch_options['signal']",
        "'B:USR1@60'",
        "set by hpctf when requeue=True",
    ),
    (
        "target-name-space",
        dict(compute_target="my cluster"),
        ["--target", "my cluster"],
        "compute_target",
        "'my cluster'",
        "target name",
    ),
    ("target-unknown", dict(compute_target="nope"), ["--target", "nope"], "compute_target", "'nope'", "unknown target"),
]

# Click refuses these itself, before hpctf sees them: its message names the option.
CLICK_NAMES = {
    "nodes-as-text": ("--nodes", "'two'", "not a valid integer"),
    "backend-horovod": ("--backend", "'horovod'", "'single', 'none', 'mpi', 'ps'"),
    "launcher-ssh": ("--launcher", "'ssh'", "'srun', 'mpirun'"),
    "container-runtime-docker": ("--container-runtime", "'docker'", "'apptainer'"),
    "env-without-value": ("--env", "'A'", "KEY=VALUE"),
}


@pytest.fixture
def project(tmp_path) -> Path:
    src = tmp_path / "project"
    (src / "sub").mkdir(parents=True)
    (src / "train.py").write_text("print('training')\n")
    (tmp_path / "outside.py").write_text("")
    (src / "link.py").symlink_to(tmp_path / "outside.py")
    ignored = tmp_path / "ignored"
    ignored.mkdir()
    (ignored / "train.py").write_text("")
    (ignored / ".hpctfignore").write_text("*.py\n")
    return src


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch) -> Path:
    """sbatch that records its calls and accepts every job: it must never be called."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    (folder / "sbatch").write_text(f'#!/bin/sh\necho "$@" >>{folder}/calls\necho 4242\n')
    (folder / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "hpctf-home"
    monkeypatch.setenv("HPCTF_HOME", str(home))
    return home


def written(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


def resolve(project: Path, fields: dict) -> dict:
    fields = {"source_directory": project, "entry_script": "train.py", "python": sys.executable, **fields}
    if fields["source_directory"] == "ignored":
        fields["source_directory"] = project.parent / "ignored"
    return fields


def assert_clear(message: str, field: str, shown: str, allowed: str) -> None:
    assert field in message, f"the message does not name {field!r}:\n{message}"
    assert shown in message, f"the message does not show the value {shown!r}:\n{message}"
    assert allowed in message, f"the message does not say what is allowed ({allowed!r}):\n{message}"
    assert "Traceback" not in message


def test_the_corpus_is_large():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, fields, args, field, shown, allowed", CASES, ids=[c[0] for c in CASES])
def test_python_api(project, home, fake_sbatch, name, fields, args, field, shown, allowed):
    """hpctf.TensorFlow(**fields) refuses it (a few only hpctf.submit can judge: the target,
    the code snapshot); one problem, named, shown and explained; nothing written or run."""
    with pytest.raises((SpecError, HpctfError)) as caught:
        hpctf.submit(hpctf.TensorFlow(**resolve(project, fields)))
    err = caught.value
    if isinstance(err, SpecError):
        assert len(err.problems) == 1, str(err)
        assert err.problems[0].field == field, str(err)
    else:
        assert "invalid job spec" not in str(err), f"a SpecError wrapped as another error:\n{err}"
    assert_clear(str(err), field, shown, allowed)
    assert written(home) == []
    assert not (fake_sbatch / "calls").exists()


CLI_CASES = [c for c in CASES if c[2] is not None]


ENTRY_SCRIPTS = ("train.py", "missing.py", "sub", "../train.py", "link.py")


def cli_args(project: Path, args: list[str]) -> list[str]:
    """The case's options, the project folder, and train.py unless the case names its own."""
    args = [a.replace("{ignored}", str(project.parent / "ignored")) for a in args]
    if "--source-dir" not in args:
        args = ["--source-dir", str(project), *args]
    if not any(a in ENTRY_SCRIPTS for a in args):
        args.append("train.py")
    return args


@pytest.mark.parametrize("name, fields, args, field, shown, allowed", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_command_line(project, home, fake_sbatch, name, fields, args, field, shown, allowed):
    """`hpctf submit ...`: one message on stderr, exit code 2, no traceback, nothing written."""
    argv = ["submit", *cli_args(project, args)]
    result = CliRunner().invoke(cli, argv, prog_name="hpctf")
    assert result.exception is None or isinstance(result.exception, SystemExit), "".join(
        traceback.format_exception(*result.exc_info)
    )
    assert result.exit_code == 2, (argv, result.output)
    message = result.stderr
    if name in CLICK_NAMES:
        option, shown, allowed = CLICK_NAMES[name]
        assert_clear(message, option, shown, allowed)
        assert message.count("Error:") == 1, message
    else:
        assert_clear(message, field, shown, allowed)
        assert message.startswith("hpctf: ") and message.count("hpctf: ") == 1, message
        if "invalid job spec" in message:
            assert "invalid job spec (1 problem)" in message, message
            # The field, and the option (or argument) of the command line that sets it.
            assert re.search(r" \[(--[a-z-]+|ENTRY_SCRIPT|SCRIPT_ARGS)\]$", message.strip()), message
    assert result.stdout == "", result.stdout
    assert written(home) == []
    assert not (fake_sbatch / "calls").exists()


def test_the_command_line_covers_most_cases():
    assert len(CLI_CASES) >= 40, len(CLI_CASES)


# A few cases as a real process (the console script, its exit code and stderr), against
# the real sbatch of the test cluster: no job appears.
REAL = [
    "negative-nodes",
    "env-slurm",
    "sbatch-ntasks",
    "bad-time",
    "entry-ignored",
    "argument-not-utf8",
    "target-unknown",
]


@pytest.mark.slurm
@pytest.mark.parametrize("name", REAL)
def test_real_process_and_real_sbatch(slurm, project, home, tmp_path, name):
    _, fields, args, field, shown, allowed = next(c for c in CASES if c[0] == name)
    tag = f"hpctf-bad-{secrets.token_hex(3)}"
    argv = cli_args(project, args)
    if field != "job_name":
        argv = ["-J", tag, *argv]
    env = {**slurm.env, "HPCTF_HOME": str(home), "HPCTF_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run([HPCTF, "submit", *argv], capture_output=True, env=env, timeout=60)
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 2, (done.returncode, stderr)
    assert_clear(stderr, field, shown, allowed)
    assert stderr.count("hpctf: ") == 1 and done.stdout == b""
    assert written(home) == []
    jobs = json.loads(slurm.run("squeue", "--json").stdout)["jobs"]
    assert not [j for j in jobs if j["name"] == tag]
    assert slurm.run("sacct", "-n", "-X", "--name", tag, "-o", "JobID", check=False).stdout.strip() == ""


def test_an_estimator_whose_code_changed_after_it_was_built(project, home, fake_sbatch):
    """The entry script deleted between building and submitting: the estimator's own
    problem (entry_script), not 'the target does not fit this job'."""
    spec = hpctf.TensorFlow(source_directory=project, entry_script="train.py", python=sys.executable)
    (project / "train.py").unlink()
    with pytest.raises(SpecError) as caught:
        hpctf.submit(spec)
    assert caught.value.fields == ["entry_script"] and "target" not in str(caught.value)
    assert written(home) == [] and not (fake_sbatch / "calls").exists()


def test_sbatch_refusing_a_job_leaves_no_run_folder_or_record(project, home, tmp_path, monkeypatch):
    """A spec hpctf accepts but sbatch refuses: one message, no run folder, no record."""
    folder = tmp_path / "refusing-bin"
    folder.mkdir()
    (folder / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: nosuch' >&2\nexit 1\n")
    (folder / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    result = CliRunner().invoke(cli, ["submit", "-p", "nosuch", str(project / "train.py")], prog_name="hpctf")
    assert result.exit_code == 2 and "invalid partition specified: nosuch" in result.stderr, result.output
    assert "Traceback" not in result.output
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    assert not (home / "registry.sqlite").exists()


def test_nan_is_refused_everywhere_a_number_goes(project):
    for fields in (
        dict(script_params={"--x": [1.0, math.inf]}),
        dict(node_count=math.nan),
        dict(port_base=float("nan")),
    ):
        with pytest.raises(SpecError):
            hpctf.TensorFlow(**resolve(project, fields))
