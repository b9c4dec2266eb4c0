"""hpctf.job, the code that runs on the compute nodes, stays standard library only.

A fresh interpreter imports every module of the package (and the public names that
run it: hpctf.runtime, hpctf.envs, hpctf.localsrun) and runs the bootstrap's --help and
--print paths; none of the login-node dependencies (Jinja, click, submitit, rich) nor
TensorFlow or Horovod may be loaded. The bootstrap's own start, which every task pays
for, also keeps clear of the standard library's costly modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hpctf.job

PACKAGE = Path(hpctf.job.__file__).parent
JOB_MODULES = sorted(f"hpctf.job.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")
FORBIDDEN = ("jinja2", "click", "submitit", "rich", "tensorflow", "horovod", "keras", "tf_keras")
# What the bootstrap avoids on every task's start (a few ms each; see hpctf.job.bootstrap).
COSTLY = ("subprocess", "argparse", "dataclasses", "inspect", "typing")

STEP_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "1",
    "SLURM_LOCALID": "1",
    "SLURM_STEP_NODELIST": "n[1-2]",
    "SLURM_STEP_TASKS_PER_NODE": "2,1",
    "SLURM_STEP_NUM_TASKS": "3",
    "CUDA_VISIBLE_DEVICES": "0,1",
}


def _loaded_after(code: str) -> list[str]:
    """Top-level names of the modules loaded by ``code`` in a fresh interpreter."""
    report = "\nimport json, sys\nprint('MODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    done = subprocess.run(
        [sys.executable, "-c", code + report],
        capture_output=True,
        text=True,
        env={**_base_env(), **STEP_ENV},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES "))
    return json.loads(line[len("MODULES ") :])


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMIX_"))}


def test_every_job_module_imports_without_login_node_dependencies():
    assert {"hpctf.job.bootstrap", "hpctf.job.local_srun", "hpctf.job.envs", "hpctf.job.probe"} <= set(JOB_MODULES)
    code = (
        "import importlib, io, contextlib\n"
        f"for name in {JOB_MODULES + ['hpctf.runtime', 'hpctf.envs', 'hpctf.localsrun']!r}:\n"
        "    importlib.import_module(name)\n"
        "from hpctf.job.bootstrap import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['--ps', '1', '--workers', '2', '--bind-gpu', '--print']) == 0\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0\n"
        "assert 'TF_CONFIG=' in out.getvalue() and 'usage: python -m hpctf.runtime' in out.getvalue()\n"
    )
    loaded = _loaded_after(code)
    assert not [name for name in FORBIDDEN if name in loaded]


def test_bootstrap_start_loads_only_what_it_needs():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['hpctf.runtime', '--ps', '1', '--workers', '2', '--keras', 'auto', '--print']\n"
        "try:\n"
        "    runpy.run_module('hpctf.runtime', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
    )
    loaded = _loaded_after(code)
    assert not [name for name in FORBIDDEN + COSTLY if name in loaded]
    assert "hostlist" in loaded  # the one module the bootstrap needs beyond the standard library


def test_one_argument_parser_for_the_bootstrap_the_srun_stand_in_and_the_probe():
    import pytest

    from hpctf.job import local_srun, probe
    from hpctf.job.args import FLAG, parse_command_line
    from hpctf.job.bootstrap import parse_arguments

    options = {"--n": int, "--name": str, "--on": FLAG}
    assert parse_command_line(["--n", "2", "--name=a b", "--on", "cmd", "--n"], options) == (
        {"n": 2, "name": "a b", "on": True},
        ["cmd", "--n"],
    )
    assert parse_command_line(["--on", "--", "--n"], options) == ({"on": True}, ["--n"])
    for bad in (["--n"], ["--n=x"], ["--on=1"], ["--other"]):
        with pytest.raises(ValueError):
            parse_command_line(bad, options)
    with pytest.raises(SystemExit):
        parse_command_line(["--help"], options, usage="usage")
    assert parse_command_line(["--help", "x"], options, loose=True) == ({"help": "1"}, ["x"])

    opts, command = parse_arguments(["--ps", "1", "--chief", "--", "python", "-c", "pass"])
    assert (opts["ps"], opts["workers"], opts["chief"], command) == (1, 0, True, ["python", "-c", "pass"])
    assert local_srun.parse(["--ntasks=3", "--kill-on-bad-exit=1", "--mpi=pmix", "python", "-V"]) == (
        {"ntasks": "3", "kill_on_bad_exit": "1", "mpi": "pmix"},
        ["python", "-V"],
    )
    got = probe.parse(["--tasks", "4", "--launcher", "srun", "--timeout", "90", "--mpi", "--ports"])
    assert (got["tasks"], got["launcher"], got["timeout"], got["mpi"], got["ports"], got["env"]) == (
        4,
        "srun",
        90.0,
        True,
        True,
        False,
    )
