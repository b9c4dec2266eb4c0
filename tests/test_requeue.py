"""Requeue (preemption and time limits): before the time limit Slurm sends SIGUSR1 to the
batch shell (--signal=B:USR1@N); the script passes it to every task through srun or
mpirun, the training saves a checkpoint and exits, and the job requeues itself (same job
id, SLURM_RESTART_COUNT) to resume from that checkpoint.

Without a cluster: the estimator's checks, the rendered script, hpctf.runtime's helper,
and the script's signal handling run by bash with stand-ins for srun and scontrol.
On the test cluster: the single example (srun) and the Horovod example (mpirun) stopped
by `scancel --signal=USR1 --batch`, and a probe stopped by a real time limit; each must
resume from the step it saved, and `hpctf status` must show two attempts.

Slurm holds a requeued job for AuthInfo's cred_expire (120 s by default) before it may
start again; the cluster tests skip that wait with `scontrol update StartTime=now`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpctf.errors import SpecError
from hpctf.render import JobPaths, render_script
from hpctf.states import JobState

from .conftest import SNAPSHOT_PATHS, bash_n, shellcheck

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "tests" / "programs"
EXAMPLES = REPO / "examples"
HPCTF = str(Path(sys.executable).with_name("hpctf"))


# ---------------------------------------------------------------------------------------
# The estimator and the rendered script
# ---------------------------------------------------------------------------------------

INVALID = [
    (dict(requeue="yes"), "requeue", "True or False"),
    (dict(requeue=True, max_restarts=-1), "max_restarts", ">= 0"),
    (dict(requeue=True, max_restarts=5000), "max_restarts", "at most 1000"),
    (dict(requeue=True, signal_grace=10), "signal_grace", "between 30"),
    (dict(requeue=True, signal_grace=70000), "signal_grace", "between 30"),
    (dict(max_restarts=2), "max_restarts", "needs requeue=True"),
    (dict(signal_grace=60), "signal_grace", "needs requeue=True"),
    (dict(requeue=True, time="2"), "signal_grace", "shorter than the time limit"),
    (dict(requeue=True, time="1:00", signal_grace=60), "signal_grace", "shorter than the time limit"),
    (dict(requeue=True, sbatch_options={"signal": "USR2@60"}), "sbatch_options['signal']", "requeue=True"),
    (dict(requeue=True, sbatch_options={"no-requeue": True}), "sbatch_options['no-requeue']", "requeue=True"),
]


@pytest.mark.parametrize("fields, field, words", INVALID, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(INVALID)])
def test_invalid_requeue_settings_name_field_and_rule(make_spec, fields, field, words):
    with pytest.raises(SpecError) as caught:
        make_spec(**fields)
    problem = next(p for p in caught.value.problems if p.field == field)
    assert words in problem.allowed, str(problem)


def test_valid_requeue_settings(make_spec):
    make_spec(requeue=True, time="1:00:00", max_restarts=0, signal_grace=30)
    make_spec(requeue=True, time="infinite")
    make_spec(requeue=True, sbatch_options={"comment": "x"})
    # Without requeue, sbatch's own --requeue stays available as a plain flag.
    make_spec(sbatch_options={"requeue": True, "signal": "USR2@60"})


def test_off_by_default_nothing_is_rendered(make_spec):
    script = render_script(make_spec(time="1:00:00"), SNAPSHOT_PATHS)
    for word in ("--requeue", "--signal", "HPCTF_CHECKPOINT_SIGNAL", "scontrol", "wait "):
        assert word not in script


@pytest.mark.parametrize(
    "fields",
    [
        dict(),
        dict(distributed_backend="mpi", node_count=2, process_count_per_node=2),
        dict(distributed_backend="mpi", launcher="mpirun", node_count=2, process_count_per_node=2),
        dict(distributed_backend="ps", node_count=2, parameter_server_count=1, worker_count=2, chief=True),
        dict(container_image="/shared/images/tf.sif"),
    ],
    ids=["single", "mpi-srun", "mpi-mpirun", "ps", "apptainer"],
)
def test_requeue_script_every_backend(make_spec, fields):
    spec = make_spec(requeue=True, max_restarts=2, signal_grace=90, time="1:00:00", **fields)
    script = render_script(spec, SNAPSHOT_PATHS)
    assert "#SBATCH --requeue\n" in script and "#SBATCH --signal=B:USR1@90\n" in script
    assert "hpctf_max_restarts=2\n" in script and "hpctf_task_grace=75 " in script
    assert "export HPCTF_CHECKPOINT_SIGNAL=USR1\n" in script
    # The launcher runs in the background (traps run while it does) and is waited for.
    launch = re.search(r'^(srun|mpirun) .*?"\$PYTHON" train\.py &\nhpctf_launcher=\$!\n', script, re.M | re.S)
    assert launch, script
    assert bash_n(script).returncode == 0
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


def test_cli_options(tmp_path):
    (tmp_path / "train.py").write_text("print('training')\n")
    run = lambda *a: subprocess.run([HPCTF, "render", *a, str(tmp_path / "train.py")], capture_output=True, text=True)  # noqa: E731
    done = run("--requeue", "--max-restarts", "1", "--signal-grace", "300", "--time", "1:00:00")
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --signal=B:USR1@300" in done.stdout and "hpctf_max_restarts=1" in done.stdout
    done = run("--max-restarts", "1")
    assert done.returncode == 2 and "max_restarts=1: needs requeue=True" in done.stderr


# ---------------------------------------------------------------------------------------
# hpctf.runtime's helper for training scripts
# ---------------------------------------------------------------------------------------


def test_restart_count_and_signal_name():
    from hpctf.runtime import RuntimeSetupError, checkpoint_signal, restart_count

    assert restart_count({}) == 0 and restart_count({"SLURM_RESTART_COUNT": "2"}) == 2
    assert checkpoint_signal({}) == signal.SIGUSR1
    assert checkpoint_signal({"HPCTF_CHECKPOINT_SIGNAL": "SIGUSR2"}) == signal.SIGUSR2
    with pytest.raises(RuntimeSetupError):
        checkpoint_signal({"HPCTF_CHECKPOINT_SIGNAL": "NOPE"})


def test_should_checkpoint_after_the_signal_and_no_tensorflow():
    code = (
        "import atexit, os, signal, sys\n"
        # Runs after hpctf's own exit handler (registered later): by then the request is
        # ignored, as it must be while Python shuts down (it puts the default back, which
        # for SIGUSR1 is to terminate) and the job script may repeat it.
        "atexit.register(lambda: print(signal.getsignal(signal.SIGUSR1).name))\n"
        "from hpctf.runtime import should_checkpoint\n"
        "assert should_checkpoint() is False\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "assert should_checkpoint() is True\n"
        "assert not any(m.startswith(('tensorflow', 'horovod', 'submitit', 'jinja2')) for m in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SIG_IGN"


def test_install_with_sigterm_listens_for_both_signals():
    code = (
        "import os, signal\n"
        "from hpctf import runtime\n"
        "runtime.install(signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "assert runtime.should_checkpoint() is True\n"
        "runtime._checkpoint['requested'] = False\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "assert runtime.should_checkpoint() is True\n"
        "print('both')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "both", done.stderr


@pytest.mark.parametrize("requeue", [True, False])
def test_bootstrap_starts_the_command_with_the_signal_ignored_only_for_requeue_jobs(requeue):
    env = {k: v for k, v in os.environ.items() if k != "HPCTF_CHECKPOINT_SIGNAL"}
    if requeue:
        env["HPCTF_CHECKPOINT_SIGNAL"] = "USR1"
    show = "import signal; print(signal.getsignal(signal.SIGUSR1).name)"
    done = subprocess.run(
        [sys.executable, "-m", "hpctf.runtime", "--", sys.executable, "-c", show],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("SIG_IGN" if requeue else "SIG_DFL")


# ---------------------------------------------------------------------------------------
# Tracking: attempts and restarts
# ---------------------------------------------------------------------------------------


def test_attempts_are_counted_from_sacct_duplicates():
    from hpctf.executors.slurm.watch import ClusterWatcher, count_attempts

    out = (
        "JobID|State|ExitCode|NodeList|Start|End\n"
        "12|REQUEUED|0:0|node1|2026-11-29T03:09:58|2026-11-29T03:10:04\n"
        "12.batch|COMPLETED|0:0|node1|2026-11-29T03:09:58|2026-11-29T03:10:04\n"
        "12|RUNNING|0:0|node2|2026-11-29T03:10:05|Unknown\n"
        "13|COMPLETED|0:0|node1|2026-11-29T03:10:05|2026-11-29T03:10:09\n"
    )
    assert count_attempts(out) == {"12": 2, "13": 1}
    # Job 14 of a rebuilt cluster: the older job 14 (COMPLETED) is not an attempt of it.
    reused = (
        "JobID|State|ExitCode|NodeList|Start|End\n"
        "14|COMPLETED|0:0|node1|2025-01-01T00:00:00|2025-01-01T00:01:00\n"
        "14|REQUEUED|0:0|node1|2026-11-29T03:09:58|2026-11-29T03:10:04\n"
        "14|REQUEUED|0:0|node1|2026-11-29T03:10:58|2026-11-29T03:11:04\n"
        "14|PENDING|0:0|None assigned|Unknown|Unknown\n"
    )
    assert count_attempts(reused) == {"14": 3}
    watcher = ClusterWatcher()
    info = watcher.read_info(out)
    assert info["12"]["State"] == "RUNNING"  # the latest attempt is the job's state
    watcher.watch("12", Path("/nonexistent"))
    assert "--duplicates" in watcher._make_command()


def test_restarts_file_and_old_registries(tmp_path):
    import sqlite3

    from hpctf.exits import job_restarts
    from hpctf.registry import Registry

    assert job_restarts(tmp_path, "5") is None
    (tmp_path / "5_restarts").write_text("2\n")
    assert job_restarts(tmp_path, "5") == 2
    # A registry from before the restarts column: opening it adds the column.
    db = tmp_path / "registry.sqlite"
    old = sqlite3.connect(db)
    old.execute(
        "CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, job_id, target, name, backend, shape, run_dir, "
        "log_dir, command, submitted, state, exit_code, started, ended, nodes, spec)"
    )
    old.execute(
        "INSERT INTO runs (job_id, target, name, backend, shape, run_dir, log_dir, command, submitted, state, spec) "
        "VALUES ('1', 'slurm', 'train', 'single', '1x1', '/r', '/r/logs', 'train.py', 0, 'COMPLETED', '{}')"
    )
    old.commit()
    old.close()
    registry = Registry(db)
    assert registry.get("1").restarts == 0
    registry.update(registry.get("1").run_id, restarts=1)
    assert registry.get("1").restarts == 1


# ---------------------------------------------------------------------------------------
# The script's signal handling, run by bash with stand-ins for srun and scontrol
# ---------------------------------------------------------------------------------------


@pytest.fixture
def fake_slurm(tmp_path) -> Path:
    """srun runs the task command once (as task 0); scontrol writes down its arguments.
    With ``FAKE_TASK_PROLOG_S`` set, srun first sleeps that long, as slurmstepd runs the
    TaskProlog: a SIGUSR1 then kills it, as it kills the real prolog."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
        'if [ -n "${FAKE_TASK_PROLOG_S:-}" ]; then sleep "$FAKE_TASK_PROLOG_S"; fi\nexec "$@"\n'
    )
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >>{tmp_path}/scontrol.calls\n')
    for name in ("srun", "scontrol"):
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_probe_script(
    make_spec,
    tmp_path,
    fake_slurm,
    probe_args,
    *,
    signal_when_training=False,
    signal_at_start=False,
    task_prolog_s=None,
    restarts=None,
    send=signal.SIGUSR1,
    **fields,
):
    """Render a requeue script around the probe, run it under bash; (exit code, logs, stdout, stderr).
    ``signal_when_training``: send ``send`` to the job script once the probe reports steps;
    ``signal_at_start``: as soon as the script says which attempt this is (before the launch)."""
    src = tmp_path / "project"  # make_spec's source folder
    (src / "requeue_probe.py").write_text((PROGRAMS / "requeue_probe.py").read_text())
    logs = tmp_path / "logs"
    logs.mkdir()
    spec = make_spec(
        entry_script="requeue_probe.py",
        arguments=[str(tmp_path / "ck.json"), *probe_args],
        requeue=True,
        python=sys.executable,
        **fields,
    )
    script = tmp_path / "job.sh"
    script.write_text(render_script(spec, JobPaths(src, logs)))
    env = {**os.environ, "PATH": f"{fake_slurm}:{os.environ['PATH']}", "SLURM_JOB_ID": "7", "PYTHONPATH": str(REPO)}
    env.pop("HPCTF_TARGET", None)
    if restarts is not None:
        env["SLURM_RESTART_COUNT"] = str(restarts)
    if task_prolog_s is not None:
        env["FAKE_TASK_PROLOG_S"] = str(task_prolog_s)
    process = subprocess.Popen(
        ["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen, seen_err = [], []
    if signal_at_start:
        for line in process.stderr:
            seen_err.append(line)
            if "attempt 1 of" in line:
                break
        process.send_signal(send)
    if signal_when_training:
        for line in process.stdout:  # the probe prints every 10 steps, after its install()
            seen.append(line)
            if line.startswith("probe: step"):
                break
        process.send_signal(send)
    out, err = process.communicate(timeout=90)
    return process.returncode, logs, "".join(seen) + out, "".join(seen_err) + err


def test_signal_saves_and_requeues_without_an_exit_status(make_spec, tmp_path, fake_slurm):
    code, logs, out, err = run_probe_script(make_spec, tmp_path, fake_slurm, ["400", "0.02"], signal_when_training=True)
    assert code == 0, err
    saved = int(re.search(r"checkpoint saved at step (\d+)", out).group(1))
    assert saved > 0 and json.loads((tmp_path / "ck.json").read_text()) == {"step": saved}
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 7\n"
    assert "attempt 1 of at most 4" in err and "requeueing job 7 (restart 1 of at most 3)" in err
    assert not (logs / "7_exitcode").exists()  # the run is not over: no exit status
    assert (logs / "7_restarts").read_text() == "0\n"


def test_a_signal_while_the_step_starts_waits_for_every_task(make_spec, tmp_path, fake_slurm):
    # Slurm may send the signal in the job's first second. Passed on at once, it would
    # reach srun while slurmstepd runs the TaskProlog (here: srun's 2 s sleep) and kill it:
    # the job would requeue with no checkpoint. The script waits for the tasks' ready marks.
    code, logs, out, err = run_probe_script(
        make_spec, tmp_path, fake_slurm, ["400", "0.02"], signal_at_start=True, task_prolog_s=2
    )
    assert code == 0, err
    saved = int(re.search(r"checkpoint saved at step (\d+)", out).group(1))
    assert json.loads((tmp_path / "ck.json").read_text()) == {"step": saved}
    assert "requeueing job 7" in err and "exit status 0" in err
    assert not list(logs.glob(".ready-*"))  # the ready folder is scratch, removed at the end


def test_no_restart_left_ends_the_job_with_138(make_spec, tmp_path, fake_slurm):
    code, logs, out, err = run_probe_script(
        make_spec, tmp_path, fake_slurm, ["400", "0.02"], signal_when_training=True, restarts=2, max_restarts=2
    )
    assert code == 138, err
    assert "checkpoint saved at step" in out and "restarted 2 time(s) already (max_restarts=2)" in err
    assert not (tmp_path / "scontrol.calls").exists()
    assert (logs / "7_exitcode").read_text() == "138\n" and (logs / "7_restarts").read_text() == "2\n"


def test_without_a_signal_the_job_ends_as_usual(make_spec, tmp_path, fake_slurm):
    code, logs, out, err = run_probe_script(make_spec, tmp_path, fake_slurm, ["5", "0.01"])
    assert code == 0 and "probe: done at step 5" in out, err
    assert (logs / "7_exitcode").read_text() == "0\n" and not (tmp_path / "scontrol.calls").exists()


def test_sigterm_ends_the_attempt_with_143_and_no_requeue(make_spec, tmp_path, fake_slurm):
    code, logs, out, err = run_probe_script(
        make_spec, tmp_path, fake_slurm, ["400", "0.02"], signal_when_training=True, send=signal.SIGTERM
    )
    assert code == 143, err
    assert (logs / "7_exitcode").read_text() == "143\n" and not (tmp_path / "scontrol.calls").exists()


def test_tasks_that_do_not_stop_are_terminated_after_the_grace_period(make_spec, tmp_path, fake_slurm):
    # The probe never listens: the bootstrap started it with SIGUSR1 ignored, so it trains
    # on; after signal_grace - 15 s (15 s here) the script stops it and requeues anyway.
    t0 = time.monotonic()
    code, logs, out, err = run_probe_script(
        make_spec, tmp_path, fake_slurm, ["4000", "0.01", "--no-install"], signal_when_training=True, signal_grace=30
    )
    assert code == 0, err
    assert "did not stop within 15s: terminating them" in err and "exit status 143" in err
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 7\n"
    assert 14 <= time.monotonic() - t0 < 30  # the grace period: bash's $SECONDS counts whole seconds


# ---------------------------------------------------------------------------------------
# On the test cluster
# ---------------------------------------------------------------------------------------


def cli(slurm, home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HPCTF, *args], capture_output=True, text=True, env={**slurm.env, "HPCTF_HOME": str(home)}, timeout=timeout
    )


def submit(slurm, home: Path, *args: str) -> tuple[str, Path]:
    done = cli(slurm, home, "submit", "--json", "--requeue", *args)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    return record["job_id"], Path(record["log_dir"])


def job_fields(slurm, job_id: str) -> dict[str, str]:
    out = slurm.run("scontrol", "show", "job", "-o", job_id, check=False).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))


def logs_of(log_dir: Path, job_id: str) -> str:
    return "\n".join(
        f"===== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(log_dir.glob(f"{job_id}_*_log.*"))
    )


def wait_for(what: str, check, timeout: float, log_dir: Path, job_id: str, poll: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"job {job_id}: {what} not within {timeout}s\n{logs_of(log_dir, job_id)}")


def requeue_and_release(slurm, job_id: str, log_dir: Path, **update: str) -> dict[str, str]:
    """Wait until the job is back in the queue (Restarts=1); let it start at once."""
    fields = wait_for(
        "requeued",
        lambda: (f := job_fields(slurm, job_id)).get("Restarts") == "1" and f.get("JobState") == "PENDING" and f,
        60,
        log_dir,
        job_id,
    )
    # Slurm holds a requeued job for cred_expire (120 s): skip most of that wait. Not all of
    # it: slurmd refuses the job's new credential ("Job credential revoked") if it is from
    # the same second as the requeue that revoked the old one.
    slurm.run("scontrol", "update", f"JobId={job_id}", "StartTime=now+3", *(f"{k}={v}" for k, v in update.items()))
    return fields


def finished(slurm, home: Path, job_id: str, log_dir: Path, timeout: float = 120) -> dict:
    def done():
        status = json.loads(cli(slurm, home, "status", "--json", job_id).stdout)
        return status if JobState.from_slurm(status["state"]).finished else None

    return wait_for("finished", done, timeout, log_dir, job_id, poll=1.0)


def assert_resumed(text: str, saved_pattern: str, resumed_pattern: str) -> int:
    saved = [int(s) for s in re.findall(saved_pattern, text)]
    resumed = [int(s) for s in re.findall(resumed_pattern, text)]
    assert len(saved) == 1 and saved[0] > 0, text
    assert resumed == [saved[0]], f"saved at {saved}, resumed from {resumed}:\n{text}"
    return saved[0]


def assert_two_attempts(slurm, home: Path, job_id: str, status: dict) -> None:
    assert status["state"] == "COMPLETED" and status["exit_code"] == 0, status
    assert status["restarts"] == 1, status
    text = cli(slurm, home, "status", job_id).stdout
    assert re.search(r"restarts\s+1 \(2 attempts; requeues itself at most \d+ time\(s\)\)", text), text
    expected = [f"{job_id}|REQUEUED", f"{job_id}|COMPLETED"]
    deadline = time.monotonic() + 20  # accounting lags the controller a little
    while True:
        rows = slurm.run(
            "sacct", "-n", "-P", "-X", "--duplicates", "-j", job_id, "-o", "JobID,State", check=False
        ).stdout.split()
        if rows == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rows == expected, rows


@pytest.mark.slurm
@pytest.mark.tensorflow
def test_single_example_resumes_from_its_checkpoint_after_usr1(slurm, home):
    job_id, log_dir = submit(
        slurm,
        home,
        "--time",
        "10",
        "--max-restarts",
        "2",
        str(EXAMPLES / "single" / "train.py"),
        "--epochs",
        "8",
        "--step-delay",
        "0.02",
        "--checkpoint-every",
        "0",
    )
    out = log_dir / f"{job_id}_0_log.out"
    wait_for("training", lambda: out.exists() and "Epoch 2/" in out.read_text(), 90, log_dir, job_id)
    signalled = time.time()
    slurm.run("scancel", "--signal=USR1", "--batch", job_id)
    held = requeue_and_release(slurm, job_id, log_dir)
    status = finished(slurm, home, job_id, log_dir)
    text = logs_of(log_dir, job_id)
    step = assert_resumed(text, r"checkpoint saved at step (\d+)", r"resuming from step (\d+)")
    assert "accuracy=" in text and "attempt 2 of at most 3" in text
    assert_two_attempts(slurm, home, job_id, status)
    second_start = time.mktime(time.strptime(job_fields(slurm, job_id)["StartTime"], "%Y-%m-%dT%H:%M:%S"))
    eligible = time.mktime(time.strptime(held["EligibleTime"], "%Y-%m-%dT%H:%M:%S"))
    print(
        f"\nsingle: saved/resumed at step {step}; signal -> requeued start {second_start - signalled:.0f} s "
        f"(Slurm alone would hold it until {eligible - signalled:.0f} s after the signal)"
    )


@pytest.mark.slurm
@pytest.mark.tensorflow
def test_horovod_example_with_mpirun_resumes_from_rank_0s_checkpoint(slurm, home):
    job_id, log_dir = submit(
        slurm,
        home,
        "--time",
        "10",
        "--backend",
        "mpi",
        "--launcher",
        "mpirun",
        "--nodes",
        "2",
        "--procs-per-node",
        "1",
        str(EXAMPLES / "horovod" / "train.py"),
        "--epochs",
        "12",
        "--step-delay",
        "0.03",
    )
    first = log_dir / f"{job_id}_0_log.out"
    # Five epochs in (rank 0 prints every fifth), so the checkpoint holds real progress.
    wait_for("five epochs", lambda: first.exists() and "epoch 5/12" in first.read_text(), 90, log_dir, job_id)
    slurm.run("scancel", "--signal=USR1", "--batch", job_id)
    requeue_and_release(slurm, job_id, log_dir)
    status = finished(slurm, home, job_id, log_dir)
    text = logs_of(log_dir, job_id)
    rank0 = first.read_text()
    step = assert_resumed(rank0, r"checkpoint saved at step (\d+)", r"resuming from step (\d+)")
    assert 5 * 21 <= step < 12 * 21, f"the checkpoint is not from the middle of training: step {step}"
    digests = re.findall(r"^rank \d/2 weights=(\w+)", text, re.M)
    assert len(digests) == 2 and len(set(digests)) == 1, text
    assert "accuracy=" in rank0
    assert_two_attempts(slurm, home, job_id, status)
    print(f"\nhorovod (mpirun): saved/resumed at step {step}")


@pytest.mark.slurm
def test_time_limit_signal_requeues_and_resumes(slurm, home, tmp_path):
    """A real time limit: --time=1 with --signal=B:USR1@30. Slurm checks time limits every
    30 s, so the signal comes 0-30 s after the start. While the job waits to run again, its
    limit is raised so the second attempt can finish."""
    src = tmp_path / "probe"
    src.mkdir()
    (src / "requeue_probe.py").write_text((PROGRAMS / "requeue_probe.py").read_text())
    job_id, log_dir = submit(
        slurm,
        home,
        "--time",
        "1",
        "--signal-grace",
        "30",
        "--max-restarts",
        "1",
        str(src / "requeue_probe.py"),
        "state.json",
        "100000",
        "0.05",
        "--finish-after-restart",
        "20",
    )
    started = time.time()
    held = requeue_and_release(slurm, job_id, log_dir, TimeLimit="5")
    status = finished(slurm, home, job_id, log_dir)
    text = logs_of(log_dir, job_id)
    assert "SIGUSR1 at" in text
    saved = [int(s) for s in re.findall(r"probe: checkpoint saved at step (\d+)", text)]
    resumed = [int(s) for s in re.findall(r"probe: restart 1 resuming from step (\d+)", text)]
    assert len(saved) == 1 and resumed == saved, text
    assert f"probe: done at step {saved[0] + 20}" in text
    assert_two_attempts(slurm, home, job_id, status)
    print(
        "\ntime limit: signal and requeue "
        f"{time.mktime(time.strptime(held['SubmitTime'], '%Y-%m-%dT%H:%M:%S')) - started:.0f} s "
        f"after submit; saved/resumed at step {saved[0]}"
    )
