"""Executors: a place a job runs is one object in hpctf.executors, found by name.

A third executor, defined here in a few lines, runs jobs through the normal paths (the
Python API and the CLI: submit, status, logs, cancel, ls, targets check) with no change to
the CLI, the registry or the doctor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import hpctf
from hpctf import executors
from hpctf.cli import cli
from hpctf.errors import HpctfError
from hpctf.executors import Executor
from hpctf.runpaths import RunPaths
from hpctf.states import JobState


class FakeJob:
    """A handle as the rest of hpctf uses one: state, exit code, cancel."""

    def __init__(self, place: FakeExecutor, job_id: str) -> None:
        self.place, self.job_id = place, job_id

    @property
    def state(self) -> JobState:
        return self.place.states[self.job_id]

    @property
    def exit_code(self) -> int | None:
        return {JobState.COMPLETED: 0, JobState.CANCELLED: 143}.get(self.state)

    def cancel(self) -> None:
        self.place.states[self.job_id] = JobState.CANCELLED


class FakeExecutor(Executor):
    """Runs nothing: remembers its jobs, and what the test says about them."""

    name = "fake"

    def __init__(self) -> None:
        self.states: dict[str, JobState] = {}
        self.started: list[Path] = []

    def command(self, script: Path) -> list[str]:
        return ["fake-run", str(script)]

    def start(self, plan) -> str:
        job_id = f"F{len(self.states) + 1}"
        self.states[job_id] = JobState.PENDING
        self.started.append(plan.script_path)
        RunPaths(plan.run_dir).log(job_id).write_text("fake output\n")
        return job_id

    def handle(self, record) -> FakeJob:
        return FakeJob(self, record.job_id)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake executor, registered, and a target "fake" in the user's config that uses it."""
    place = executors.register(FakeExecutor())
    config = tmp_path / "config.toml"
    config.write_text('[targets.fake]\nexecutor = "fake"\n')
    monkeypatch.setenv("HPCTF_CONFIG", str(config))
    monkeypatch.setenv("HPCTF_HOME", str(tmp_path / "home"))
    yield place
    executors.unregister("fake")


def run(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def test_the_built_in_executors_are_found_by_name():
    assert executors.names()[:2] == ("slurm", "local")
    assert executors.get("local").runs_here and not executors.get("slurm").runs_here
    assert executors.get("slurm").polls_queue and executors.get("slurm").can_requeue
    with pytest.raises(HpctfError, match="no executor 'nowhere': hpctf knows 'slurm' or 'local'"):
        executors.get("nowhere")


def test_an_unknown_executor_in_a_profile_names_the_registered_ones(tmp_path, monkeypatch, source_dir):
    config = tmp_path / "config.toml"
    config.write_text('[targets.odd]\nexecutor = "nowhere"\n')
    monkeypatch.setenv("HPCTF_CONFIG", str(config))
    done = CliRunner().invoke(cli, ["targets"])
    assert "targets.odd.executor='nowhere': must be 'slurm' or 'local'" in done.output


def test_a_third_executor_runs_jobs_through_the_cli(fake, source_dir, monkeypatch):
    monkeypatch.chdir(source_dir)
    dry = run("submit", "--target", "fake", "--dry-run", "--json", "train.py")
    assert json.loads(dry)["command"].startswith("fake-run ")
    out = run("submit", "--target", "fake", "train.py")
    job_id = re.search(r"Submitted job (\S+) \(", out).group(1)
    assert job_id == "F1" and "on this machine" not in out
    assert fake.started[0].name == "job.sbatch" and fake.started[0].exists()

    assert json.loads(run("status", job_id, "--json"))["state"] == "PENDING"
    fake.states[job_id] = JobState.RUNNING
    status = json.loads(run("status", job_id, "--json"))
    assert (status["state"], status["target"], status["exit_code"]) == ("RUNNING", "fake", None)
    assert run("logs", job_id) == "fake output\n"
    assert run("cancel", job_id) == f"cancelled job {job_id}\n"
    status = json.loads(run("status", job_id, "--json"))
    assert (status["state"], status["exit_code"]) == ("CANCELLED", 143)
    assert job_id in run("ls")
    checked = CliRunner().invoke(cli, ["targets", "check", "fake", "--json"])
    assert json.loads(checked.output)["findings"][0]["detail"] == "the fake executor has no checks"


def test_a_third_executor_runs_jobs_through_the_python_api(fake, make_spec):
    job = hpctf.submit(make_spec(compute_target="fake"))
    assert isinstance(job, FakeJob) and job.state is JobState.PENDING
    fake.states[job.job_id] = JobState.COMPLETED
    again = hpctf.attach(job.job_id)
    assert again.state is JobState.COMPLETED and again.exit_code == 0


@pytest.mark.parametrize(
    "old, new",
    [
        ("hpctf.tracking\nSlurmRun", "hpctf.executors.slurm.watch\nSlurmRun"),
        ("hpctf.localrun\nLocalRun", "hpctf.executors.local.handle\nLocalRun"),
    ],
)
def test_handles_pickled_under_their_former_modules_still_load(old, new):
    """Users pickle handles; a pickle names the class by module: the old names still load it."""
    import pickle

    assert pickle.loads(f"c{old}\n.".encode()) is pickle.loads(f"c{new}\n.".encode())
