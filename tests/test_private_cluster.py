"""Private by default and secrets on the real cluster (#21): with umask 022 a submit
leaves every folder and file hpctf and the job created owner-only; a --secret-env value
reaches every rank of a 2-node mpi job (srun and mpirun) and no file, no output; a cache
folder others can write is refused by the job."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from .test_private import PROGRAMS, files_holding, open_to_others

pytestmark = pytest.mark.slurm
HPCTF = str(Path(sys.executable).with_name("hpctf"))


def cli(slurm, home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240):
    def umask():
        os.umask(0o022)  # a login node's usual umask

    full = {**slurm.env, "HPCTF_HOME": str(home), **(env or {})}
    return subprocess.run([HPCTF, *args], capture_output=True, text=True, env=full, timeout=timeout, preexec_fn=umask)


@pytest.fixture
def probe(shared_dir) -> Path:
    src = shared_dir / "project"
    src.mkdir()
    (src / "secret_probe.py").write_bytes((PROGRAMS / "secret_probe.py").read_bytes())
    return src / "secret_probe.py"


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_secret_reaches_every_rank_and_no_file_and_the_run_is_private(slurm, shared_dir, probe, launcher):
    home = shared_dir / "hpctf-home"
    value = "s-" + secrets.token_hex(16)
    env = {"T21_TOKEN": value}
    options = ["--backend", "mpi", "--launcher", launcher, "--nodes", "2", "--procs-per-node", "2", "--time", "5"]
    options += ["--secret-env", "T21_TOKEN", "--env", "SECRET_NAME=T21_TOKEN"]
    options += ["--env", f"SECRET_SHA256={hashlib.sha256(value.encode()).hexdigest()}", str(probe)]

    outputs = [cli(slurm, home, "render", *options, env=env)]
    outputs.append(cli(slurm, home, "submit", "--dry-run", "--json", *options, env=env))
    submitted = cli(slurm, home, "submit", "--wait", "--json", *options, env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    record = json.loads(submitted.stdout.splitlines()[0])
    job_id = record["job_id"]
    outputs += [submitted, cli(slurm, home, "status", "--json", job_id), cli(slurm, home, "ls", "--json")]
    for done in outputs:
        assert done.returncode == 0, done.stderr
        assert value not in done.stdout + done.stderr

    logs = Path(record["log_dir"])
    lines = sorted(
        line
        for rank in range(4)
        for line in (logs / f"{job_id}_{rank}_log.out").read_text().splitlines()
        if line.startswith("SECRET")
    )
    assert [line.split()[1] for line in lines] == [f"rank={r}" for r in range(4)], lines
    assert all(line.endswith(" ok") for line in lines), lines
    assert len({line.split()[2] for line in lines}) == 2  # both nodes

    # The registry, the run folder, the logs: every byte read, every mode owner-only.
    assert files_holding(home, value.encode()) == []
    assert files_holding(logs, value.encode()) == []
    assert open_to_others(home) == {}, open_to_others(home)
    assert "umask 077" in (Path(record["run_dir"]) / "job.sbatch").read_text()


def test_a_cache_folder_others_can_write_is_refused_by_the_job(slurm, shared_dir, probe, tmp_path):
    cache = shared_dir / "open-cache"
    cache.mkdir()
    cache.chmod(0o777)
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.lab]\nenv_cache = "{cache}"\ntensorflow = ""\n')
    home = shared_dir / "hpctf-home"
    done = cli(
        slurm,
        home,
        "submit",
        "--wait",
        "--target",
        "lab",
        "--pip",
        "hpctf-no-such-package",
        "--time",
        "5",
        str(probe),
        env={"HPCTF_CONFIG": str(config)},
    )
    assert done.returncode != 0, done.stdout + done.stderr
    job_id = done.stdout.split("Submitted job ", 1)[1].split()[0]
    err = cli(slurm, home, "logs", job_id, "--err", env={"HPCTF_CONFIG": str(config)}).stdout
    assert f"the environment cache {cache} is not safe to use" in err and "everyone can write it" in err, err
    assert "chmod go-w" in err
    assert list(cache.iterdir()) == []  # nothing was built there


@pytest.mark.root
def test_a_shared_target_gives_the_run_and_slurms_logs_to_its_group(slurm, shared_dir, probe, tmp_path):
    import grp
    import stat

    group = grp.getgrgid(os.getegid()).gr_name
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.team]\nshare_with_group = "{group}"\n')
    home = shared_dir / "hpctf-home"
    env = {"HPCTF_CONFIG": str(config)}
    done = cli(slurm, home, "submit", "--wait", "--json", "--target", "team", "--time", "5", str(probe), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    run, logs = Path(record["run_dir"]), Path(record["log_dir"])
    for path in (run, logs, run / "code", run / "outputs"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o2750, path
    slurm_logs = sorted(logs.glob(f"{record['job_id']}_0_log.*"))
    assert [p.name.rsplit(".", 1)[1] for p in slurm_logs] == ["err", "out"]
    for path in (*slurm_logs, run / "job.sbatch"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
        assert path.stat().st_gid == os.getegid()
    assert stat.S_IMODE((home / "registry.sqlite").stat().st_mode) == 0o600
