"""`hpctf render` and `hpctf tf-config`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpctf.cli import cli


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed console script, in a fresh process (what a user gets)."""
    exe = Path(sys.executable).with_name("hpctf")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_render_issue_example(source_dir):
    done = run_cli(
        "render",
        "--backend",
        "mpi",
        "--nodes",
        "2",
        "--procs-per-node",
        "4",
        "--gpus-per-node",
        "4",
        "train.py",
        "--epochs",
        "3",
        cwd=source_dir,
    )
    assert done.returncode == 0, done.stderr
    script = done.stdout
    assert (
        "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=4" in script and "#SBATCH --gres=gpu:4" in script
    )
    assert "srun --mpi=pmix --ntasks=8" in script and '"$PYTHON" train.py --epochs 3' in script
    assert "--bind-gpu" in script


def test_render_ps_example_gives_each_task_its_tf_config(source_dir):
    done = run_cli(
        "render", "--backend", "ps", "--nodes", "3", "--ps", "1", "--workers", "2", "train.py", cwd=source_dir
    )
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --ntasks=3" in done.stdout
    assert (
        "-m hpctf.runtime --ps 1 --workers 2 --keras auto --done-dir" in done.stdout
        and "--port-base" not in done.stdout
    )


def test_options_after_the_entry_script_belong_to_the_script(source_dir):
    result = CliRunner().invoke(
        cli, ["render", "--source-dir", str(source_dir), "train.py", "--nodes", "5", "--backend", "x"]
    )
    assert result.exit_code == 0, result.output
    assert "#SBATCH --nodes=1" in result.output
    assert '"$PYTHON" train.py --nodes 5 --backend x' in result.output


def test_entry_script_folder_is_the_default_source_dir(source_dir, tmp_path):
    done = run_cli("render", str(source_dir / "train.py"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"cd -- {source_dir}" in done.stdout


def test_render_to_file(source_dir, tmp_path):
    out = tmp_path / "job.sbatch"
    result = CliRunner().invoke(
        cli, ["render", "--source-dir", str(source_dir), "-o", str(out), "--use-gpu", "train.py"]
    )
    assert result.exit_code == 0, result.output
    assert "#SBATCH --gres=gpu:1" in out.read_text() and os.access(out, os.X_OK)


def test_render_env_sbatch_pip_and_setup_options(source_dir):
    result = CliRunner().invoke(
        cli,
        [
            "render",
            "--source-dir",
            str(source_dir),
            "--env",
            "A=1",
            "--env",
            "B=x y",
            "--sbatch",
            "mail-type=END",
            "--sbatch",
            "requeue",
            "--pip",
            "six",
            "--setup",
            "module load cuda",
            "--partition",
            "debug",
            "--time",
            "10",
            "train.py",
        ],
    )
    assert result.exit_code == 0, result.output
    for line in (
        "export A=1",
        "export B='x y'",
        "#SBATCH --mail-type=END",
        "#SBATCH --requeue",
        "module load cuda",
        "#SBATCH --partition=debug",
        "#SBATCH --time=10",
        "--pip six",
    ):
        assert line in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--nodes", "0", "train.py"], "node_count=0"),
        (["--procs-per-node", "2", "train.py"], "distributed_backend='mpi'"),
        (["--time", "forever", "train.py"], "time='forever'"),
        (["missing.py"], "entry_script='missing.py'"),
        (["--env", "NOEQUALS", "train.py"], "is not KEY=VALUE"),
        (["--backend", "horovod", "train.py"], "'horovod' is not one of"),
        (["--sbatch", "nodes=3", "train.py"], "use the estimator's node_count"),
    ],
)
def test_bad_input_is_one_clear_message_and_exit_2(source_dir, args, words):
    done = run_cli("render", *args, cwd=source_dir)
    assert done.returncode == 2
    assert words in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_tf_config_inside_a_slurm_like_environment():
    env = dict(os.environ, SLURM_STEP_NODELIST="node[1-3]", SLURM_STEP_TASKS_PER_NODE="2,1(x2)", SLURM_PROCID="3")
    done = run_cli("tf-config", "--ps", "1", "--workers", "2", "--chief", "--port-base", "5000", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "cluster": {"chief": ["node1:5000"], "ps": ["node1:5001"], "worker": ["node2:5002", "node3:5003"]},
        "task": {"type": "worker", "index": 1},
        "environment": "cloud",
    }


def test_tf_config_outside_slurm_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    done = run_cli("tf-config", env=env)
    assert done.returncode == 2 and "inside a Slurm job step" in done.stderr and "Traceback" not in done.stderr


def test_runtime_print_mode():
    env = dict(
        os.environ,
        SLURM_STEP_NODELIST="node[1-2]",
        SLURM_STEP_TASKS_PER_NODE="1(x2)",
        SLURM_PROCID="0",
        CUDA_VISIBLE_DEVICES="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.runtime", "--ps", "1", "--workers", "1", "--print"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert json.loads(lines["TF_CONFIG"])["task"] == {"type": "ps", "index": 0}
    assert lines["CUDA_VISIBLE_DEVICES"] == ""


def test_render_never_imports_heavy_modules(source_dir):
    code = (
        "import sys; from hpctf.cli import main; sys.argv=['hpctf','render','train.py']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\nelse:\n    code = 0\n"
        "heavy = [m for m in ('submitit','tensorflow','horovod','mpi4py','pydantic') if m in sys.modules]\n"
        "print('HEAVY', heavy, 'EXIT', code, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=source_dir)
    assert "HEAVY [] EXIT 0" in done.stderr, done.stderr  # it rendered, and imported none of them
    assert done.stdout.startswith("#!/bin/bash") and "train.py" in done.stdout


@pytest.mark.parametrize("width", [60, 80, 200])
def test_help_lists_every_command_as_click_would_without_importing_them(width):
    # `hpctf --help` takes the commands' one-line help from hpctf.cli.COMMANDS; it must be
    # what click writes from the commands themselves, at any terminal width.
    import click

    from hpctf.cli import COMMANDS, LazyGroup

    ours = CliRunner().invoke(cli, ["--help"], terminal_width=width).output
    original = LazyGroup.format_commands
    try:
        LazyGroup.format_commands = click.Group.format_commands
        clicks = CliRunner().invoke(cli, ["--help"], terminal_width=width).output
    finally:
        LazyGroup.format_commands = original
    assert ours == clicks and all(name in ours for name in COMMANDS)
    code = (
        "import sys; from hpctf.cli import main; sys.argv=['hpctf','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('hpctf.cli.')), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stderr.strip() == "[]", done.stderr
