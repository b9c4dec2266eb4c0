"""submitit's own Slurm job tests, run against hpctf's SlurmRun.

The tests are imported from the installed submitit (``submitit/slurm/test_slurm.py``),
never copied, and run with SlurmRun wherever they make a ``SlurmJob``: an upgrade of
submitit brings its new tests here. They use submitit's mocked sbatch/sacct, no cluster.
The ones that fail by design (``result()`` is the job's exit code, see README, "The
estimator (Python)") are strict xfails that name the reason and the exception expected.
"""

from __future__ import annotations

import functools
import inspect
import subprocess

import pytest
import submitit
from submitit.conftest import fast_forward_clock, weird_tmp_path  # noqa: F401 - fixtures of the upstream tests
from submitit.core import test_core
from submitit.core.utils import FailedJobError, UncompletedJobError
from submitit.slurm import slurm as submitit_slurm
from submitit.slurm import test_slurm as upstream

from hpctf import schedcall
from hpctf.executors.slurm.watch import ClusterWatcher, SlurmRun


class _SchedulerThroughCheckOutput:
    """``subprocess`` as hpctf.schedcall (every scheduler call) sees it during these tests.

    submitit's mock replaces ``subprocess.check_output``; ClusterWatcher calls
    ``subprocess.run`` (with a timeout), which the mock does not see, so without this the
    watcher would ask the machine's real sacct about the mock's job ids. Outside the mock
    (or for a command it does not know: squeue, sinfo) the scheduler is not installed."""

    TimeoutExpired = subprocess.TimeoutExpired

    @staticmethod
    def run(command, **_kwargs):
        mock = subprocess.check_output  # looked up now: the mock, inside mocked_slurm()
        if not isinstance(mock, test_core.MockedSubprocess):
            raise FileNotFoundError(command[0])
        try:
            out = mock(command)
        except ValueError as err:  # the mock's "Unknown command"
            raise FileNotFoundError(command[0]) from err
        text = out.decode() if isinstance(out, bytes) else out
        return subprocess.CompletedProcess(command, 0, stdout=text, stderr="")


@pytest.fixture(autouse=True)
def slurm_runs(monkeypatch):
    """Every SlurmJob the tests make is a SlurmRun, watched by a ClusterWatcher of its own
    (the class-wide one would carry jobs and the accounting flag from test to test).
    Yields the classes of the jobs made; at the end, checks none was a plain SlurmJob."""
    monkeypatch.setattr(submitit_slurm, "SlurmJob", SlurmRun)  # `slurm.SlurmJob(...)` in the tests, job arrays
    monkeypatch.setattr(submitit_slurm.SlurmExecutor, "job_class", SlurmRun)  # executor.submit, AutoExecutor
    monkeypatch.setattr(SlurmRun, "watcher", ClusterWatcher())
    monkeypatch.setattr(schedcall, "subprocess", _SchedulerThroughCheckOutput)

    made: list[type] = []
    init = submitit.SlurmJob.__init__

    def spy(self, *args, **kwargs):
        made.append(type(self))
        init(self, *args, **kwargs)

    monkeypatch.setattr(submitit.SlurmJob, "__init__", spy)
    yield made
    assert all(issubclass(cls, SlurmRun) for cls in made), f"a job was not a SlurmRun: {made}"


def by_design(raises, why: str):
    """An upstream test that fails against SlurmRun by design, and must fail on ``raises``
    (any other exception is a real failure)."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=f"hpctf by design: {why}")


# hpctf jobs are sbatch scripts: they write no result pickle, result() is the job's exit
# code. submitit's mocked jobs stay RUNNING for sacct and leave no exit code: result() is None.
BY_DESIGN = {
    "test_slurm_job_mocked": by_design(
        AssertionError, "result() is the job's exit code (None here), not the function's return value 12"
    ),
    # [True] submits through executor.batch(), which turns its placeholder into a SlurmRun
    # in place: raises=AssertionError keeps that working (it was a TypeError, see SlurmRun).
    "test_slurm_job_array_mocked": by_design(
        AssertionError, "results are the jobs' exit codes (None here), not the function's x + y"
    ),
    "test_slurm_error_mocked": by_design(
        pytest.fail.Exception,
        "result() returns the exit code and does not raise FailedJobError for a failed job; exception() "
        "returns that error (test_exception_is_returned_not_raised)",
    ),
}

# test_slurm_weird_dir skips itself for a folder name with a newline (it reads the sbatch
# file line by line, which such a name splits): nothing of SlurmRun's to test there, and no
# test here skips, so that case of the weird_tmp_path fixture is deselected: the test runs
# with the fixture's other folder names (its params, read from pytest's fixture marker).
WEIRD_NAMES_WITHOUT_NEWLINE = [name for name in weird_tmp_path._fixture_function_marker.params if "\n" not in name]
ONLY = {
    "test_slurm_weird_dir": pytest.mark.parametrize("weird_tmp_path", WEIRD_NAMES_WITHOUT_NEWLINE, indirect=True),
}


def _expose(test):
    """A test of this module that runs the upstream one, with marks of its own (marking
    the upstream function itself would change it for anyone else who collects it)."""

    @functools.wraps(test)  # the signature (its fixtures) and parametrize marks come along
    def run(**kwargs):
        return test(**kwargs)

    for mark in (BY_DESIGN.get(test.__name__), ONLY.get(test.__name__)):
        if mark is not None:
            run = mark(run)
    return run


UPSTREAM_TESTS = [name for name, _ in inspect.getmembers(upstream, inspect.isfunction) if name.startswith("test_")]
globals().update({name: _expose(getattr(upstream, name)) for name in UPSTREAM_TESTS})


def test_every_by_design_failure_names_an_upstream_test():
    """A renamed or removed upstream test must not leave a stale mark behind."""
    assert set(BY_DESIGN) | set(ONLY) <= set(UPSTREAM_TESTS)


def test_the_upstream_tests_make_slurm_runs(slurm_runs, tmp_path):
    """The substitution is real: the jobs upstream tests make (directly, through
    SlurmExecutor and AutoExecutor) are SlurmRuns, and hpctf's watcher answers for them."""
    upstream.test_mocked_missing_state(tmp_path / "direct")
    upstream.test_slurm_job_no_stderr(tmp_path / "executor")
    upstream.test_slurm_through_auto({}, tmp_path / "auto")
    assert len(slurm_runs) == 4 and set(slurm_runs) == {SlurmRun}
    assert SlurmRun.watcher.accounting is True  # hpctf's sacct call was answered, by the mock


def test_exception_is_returned_not_raised(tmp_path):
    """submitit's contract: exception() waits and returns, never raises; None on success,
    else an UncompletedJobError (FailedJobError is one) that points at the log."""
    with upstream.mocked_slurm() as mock:
        mock.set_job_state("12", "COMPLETED")
        mock.set_job_state("13", "FAILED")
        (tmp_path / "12_exitcode").write_text("0\n")  # what every hpctf job script's EXIT trap writes
        (tmp_path / "13_exitcode").write_text("3\n")
        done, failed = SlurmRun(tmp_path, "12"), SlurmRun(tmp_path, "13")
        assert done.exception() is None
        error = failed.exception()
    assert isinstance(error, FailedJobError) and isinstance(error, UncompletedJobError)
    assert str(tmp_path / "13_0_log.err") in str(error)


def test_task_n_is_a_sub_job_as_in_submitit(tmp_path):
    """task(n): one sub-job per task, of the job's own class, with that task's logs and the
    job's state; out of range is submitit's ValueError; a one-task job is its own task 0."""
    with upstream.mocked_slurm() as mock:
        mock.set_job_state("12", "FAILED")
        (tmp_path / "12_exitcode").write_text("143\n")  # srun stopped the others...
        (tmp_path / "12_1_failed").write_text("3\n")  # ...after task 1 failed with 3
        (tmp_path / "12_1_log.out").write_text("rank 1\n")
        job = SlurmRun(tmp_path, "12", tasks=(0, 1, 2))
        task = job.task(1)
        assert isinstance(task, SlurmRun) and (task.job_id, task.task_id, task.num_tasks) == ("12", 1, 1)
        assert task.stdout() == "rank 1\n" and task.state == job.state == "FAILED"
        assert job.results() == [3, 3, 3] and task.result() == 3
        for error in (job.exception(), task.exception()):
            assert isinstance(error, FailedJobError)
            assert "task 1 failed first, with exit code 3" in str(error)
        with pytest.raises(ValueError, match="task_id 3 must be between 0 and 2"):
            job.task(3)
        single = SlurmRun(tmp_path, "12")
        assert single.task(0) is single
