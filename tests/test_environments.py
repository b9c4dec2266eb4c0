"""Job environments for real: pip packages from PyPI in a cached environment, its lock,
failed installs, conda without conda, environment modules and missing container runtimes.

Each test gets its own environment cache (a fresh package set), named by a site profile
in a user config file, as a site would name its shared cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpctf
from hpctf.job import envs
from hpctf.render import JobPaths, render_script
from hpctf.states import JobState

# Small pure-Python packages from PyPI; the interpreter running the suite has none of them.
PACKAGE = "tomli-w==1.0.0"
MODULE = "tomli_w"

PROBE = """\
import importlib, json, os, sys
found = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    found[name] = module.__file__
print("PROBE " + json.dumps({"modules": found, "python": sys.executable, "prefix": sys.prefix,
      "module_var": os.environ.get("HPCTF_TEST_MODULE")}), flush=True)
"""


@pytest.fixture
def project(shared_dir: Path) -> Path:
    src = shared_dir / "project"
    src.mkdir()
    (src / "probe.py").write_text(PROBE)
    return src


@pytest.fixture
def cache(shared_dir: Path, monkeypatch) -> Path:
    """A site profile 'envlab' whose environment cache is this test's own folder."""
    cache = shared_dir / "envs"
    config = shared_dir / "config.toml"
    # tensorflow = "": the environments hold only the test's packages; TensorFlow, where a
    # test imports it, comes from the interpreter they layer on (never a 3 GB download).
    config.write_text(f'[targets.envlab]\nenv_cache = "{cache}"\ntime = "10"\ntensorflow = ""\n')
    monkeypatch.setenv("HPCTF_CONFIG", str(config))
    return cache


def probe_of(job) -> dict:
    lines = [line for line in job.stdout().splitlines() if line.startswith("PROBE ")]
    assert lines, f"no probe output\n{job.stdout()}\n{job.stderr()}"
    return json.loads(lines[-1][len("PROBE ") :])


def run(project: Path, **fields):
    fields.setdefault("compute_target", "envlab")
    job = hpctf.submit(hpctf.TensorFlow(source_directory=project, entry_script="probe.py", **fields))
    job.result()
    return job


def built_environments(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("pip-*") if p.is_dir())


@pytest.mark.slurm
@pytest.mark.tensorflow
def test_pip_packages_are_importable_and_a_second_job_reuses_the_environment(slurm, home, project, cache):
    first = run(project, pip_packages=[PACKAGE], arguments=[MODULE, "hpctf", "tensorflow"])
    assert first.state == JobState.COMPLETED, first.stderr()
    probe = probe_of(first)
    [env] = built_environments(cache)
    assert probe["prefix"] == str(env)  # the tasks ran the environment's interpreter
    assert probe["modules"][MODULE].startswith(str(env))  # the package is the environment's
    assert not probe["modules"]["hpctf"].startswith(str(env))  # layered: the interpreter's own
    assert "hpctf.envs: building" in first.stderr() and "Successfully installed tomli-w-1.0.0" in first.stderr()
    assert json.loads((env / envs.READY).read_text())["pip"] == [PACKAGE]

    second = run(project, pip_packages=[PACKAGE], arguments=[MODULE])
    assert second.state == JobState.COMPLETED, second.stderr()
    assert f"hpctf.envs: cache hit: {env}" in second.stderr()
    assert "hpctf.envs: building" not in second.stderr() and "Collecting" not in second.stderr()  # no pip run
    assert built_environments(cache) == [env]


@pytest.mark.slurm
def test_two_concurrent_jobs_with_a_new_package_set_build_it_once(slurm, home, project, cache):
    spec = hpctf.TensorFlow(
        source_directory=project,
        entry_script="probe.py",
        compute_target="envlab",
        pip_packages=["text-unidecode==1.3"],
        arguments=["text_unidecode"],
    )
    jobs = [hpctf.submit(spec), hpctf.submit(spec)]
    for job in jobs:
        job.result()
        assert job.state == JobState.COMPLETED, job.stderr()
    logs = [job.stderr() for job in jobs]
    assert sum("hpctf.envs: building" in log for log in logs) == 1, logs
    other = next(log for log in logs if "hpctf.envs: building" not in log)
    assert "built by another job while this one waited" in other or "cache hit" in other
    assert len(built_environments(cache)) == 1
    assert probe_of(jobs[0])["prefix"] == probe_of(jobs[1])["prefix"]


@pytest.mark.slurm
def test_a_failed_install_fails_the_job_early_and_keeps_nothing(slurm, home, project, cache):
    job = run(project, pip_packages=["hpctf-no-such-package-7f3a==0.0.1"], arguments=["json"])
    assert job.state == JobState.FAILED and job.exit_code == 1, job.exit_code  # hpctf.envs: error
    err = job.stderr()
    assert "No matching distribution found for hpctf-no-such-package-7f3a==0.0.1" in err  # pip's own error
    assert "hpctf.envs: error: pip install failed" in err and "no environment was kept" in err
    assert "PROBE" not in job.stdout()  # the entry script never started
    assert built_environments(cache) == []  # nothing a later job could trust


def test_an_unfinished_build_is_removed_not_trusted(tmp_path):
    """A build killed half-way leaves a folder without the ready marker: the next job
    rebuilds it instead of using it."""
    cache = tmp_path / "envs"
    key = envs.environment_key("pip", [PACKAGE], [], None)
    half = cache / f"pip-{key}"
    (half / "bin").mkdir(parents=True)
    (half / "bin" / "python").write_text("#!/bin/sh\nexit 99\n")
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.envs", "ensure", "--cache", str(cache), "--pip", PACKAGE, "--tensorflow", ""],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "removing an unfinished build" in done.stderr
    python = Path(done.stdout.strip())
    assert python == half / "bin" / "python" and (half / envs.READY).is_file()
    assert subprocess.run([python, "-c", f"import {MODULE}"]).returncode == 0


def test_a_job_waits_for_the_lock_of_a_build_in_progress(tmp_path):
    """While another job holds the build lock, ensure waits, then uses that job's build."""
    cache = tmp_path / "envs"
    cache.mkdir()
    key = envs.environment_key("pip", [PACKAGE], [], None)
    with open(cache / f"pip-{key}.lock", "a+") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        waiting = subprocess.Popen(
            [sys.executable, "-m", "hpctf.envs", "ensure", "--cache", str(cache), "--pip", PACKAGE, "--tensorflow", ""],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        said = waiting.stderr.readline()  # written just before it blocks on the lock
        assert "waiting for its lock" in said and waiting.poll() is None, said
        # "Another job" finishes its build: a ready environment, then the lock is released.
        env = cache / f"pip-{key}"
        (env / "bin").mkdir(parents=True)
        (env / envs.READY).write_text("{}")
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "built by another job while this one waited" in err
    assert out.strip() == str(env / "bin" / "python")


@pytest.mark.slurm
def test_conda_packages_without_conda_stop_the_job_with_a_clear_message(slurm, home, project, cache):
    job = run(project, conda_packages=["numpy"], arguments=["json"])
    assert job.state == JobState.FAILED
    assert "conda_packages were requested but neither mamba nor conda is on PATH" in job.stderr()
    assert "PROBE" not in job.stdout()


# ---------------------------------------------------------------------------------------
# Environment modules (Debian's environment-modules, installed by scripts/test)
# ---------------------------------------------------------------------------------------

MODULEFILE = """#%Module1.0
setenv HPCTF_TEST_MODULE loaded-1.0
"""


@pytest.fixture
def modulefiles(shared_dir: Path, cache: Path) -> Path:
    if not Path("/usr/share/modules/init/bash").is_file():
        pytest.fail("Environment Modules is not installed (apt-get install environment-modules; scripts/test does it)")
    folder = shared_dir / "modulefiles"
    (folder / "hpctf-test").mkdir(parents=True)
    (folder / "hpctf-test" / "1.0").write_text(MODULEFILE)
    config = Path(os.environ["HPCTF_CONFIG"])
    config.write_text(config.read_text() + f'module_paths = ["{folder}"]\n')
    return folder


@pytest.mark.slurm
def test_modules_are_loaded_before_the_tasks_start(slurm, home, project, modulefiles):
    job = run(project, modules=["hpctf-test/1.0"], arguments=["json"])
    assert job.state == JobState.COMPLETED, job.stderr()
    assert probe_of(job)["module_var"] == "loaded-1.0"


@pytest.mark.slurm
def test_a_missing_module_fails_the_job(slurm, home, project, modulefiles):
    job = run(project, modules=["hpctf-test/9.9"], arguments=["json"])
    assert job.state == JobState.FAILED
    assert "hpctf-test/9.9" in job.stderr() and "PROBE" not in job.stdout()


@pytest.mark.root
def test_no_module_command_is_a_clear_failure(make_spec, tmp_path):
    """The rendered script on a node without Lmod/Environment Modules: hide their init
    files in a private mount namespace (root; unshare is util-linux's) and run the
    script's module section."""
    script = render_script(make_spec(modules=["cuda/12.2"]), JobPaths(tmp_path, tmp_path))
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    hide = " && ".join(
        f"mount -t tmpfs tmpfs {d}" for d in ("/usr/share/modules", "/etc/profile.d") if Path(d).is_dir()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASH_FUNC_module", "MODULE", "LOADEDMODULES"))}
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{hide or 'true'} && SLURM_JOB_ID=1 exec bash {path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "there is no 'module' command on" in done.stderr


@pytest.mark.slurm
@pytest.mark.parametrize(
    "runtime, message",
    [
        ("apptainer", "container_image needs apptainer or singularity, and neither is on PATH"),
        ("pyxis", "container_runtime='pyxis' but srun on"),
    ],
)
def test_a_missing_container_runtime_stops_the_job_with_a_clear_message(slurm, home, project, cache, runtime, message):
    job = run(project, container_image="/shared/images/tf.sif", container_runtime=runtime, arguments=["json"])
    assert job.state == JobState.FAILED and message in job.stderr()
