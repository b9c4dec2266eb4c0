"""Real TensorFlow training through hpctf on the three-node cluster: every example.

The examples train on scikit-learn's digits (shipped with the package, no download) and
must reach the stated accuracy. Failed runs print their logs for diagnosis.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

import hpctf
from hpctf.executors.local.launch import free_port_base

from .test_metrics_cluster import chart_and_png, hpctf_cli
from .training import all_logs, submit_cli, task_log

pytestmark = [pytest.mark.slurm, pytest.mark.tensorflow]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
ACCURACY = 0.9


def accuracy_in(text: str) -> list[float]:
    return [float(a) for a in re.findall(r"accuracy=([0-9.]+)", text)]


def submit_estimator(example: str, **changes) -> tuple[str, Path]:
    """Submit an example's own estimator.py from Python and wait."""
    spec = importlib.util.spec_from_file_location(f"{example}_estimator", EXAMPLES / example / "estimator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    job = hpctf.submit(module.estimator.with_changes(**changes))
    code = job.result()
    log_dir = Path(job.paths.folder)
    assert code == 0, f"job {job.job_id} ended {job.state} ({code}):\n{all_logs(log_dir, job.job_id)}"
    return job.job_id, log_dir


def test_single_example_from_its_estimator(slurm, home):
    job_id, logs = submit_estimator("single")
    [accuracy] = accuracy_in(task_log(logs, job_id, 0))
    assert accuracy >= ACCURACY
    # What the run kept: Keras's epochs (hpctf metrics), TensorBoard's events, the model.
    rows = json.loads(hpctf_cli(slurm, home, "metrics", "--json", job_id))
    names = {r["name"] for r in rows if r["rank"] == 0}
    assert names == {"loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy"}, names
    assert [r["value"] for r in rows if r["name"] == "test_accuracy"] == [pytest.approx(accuracy, abs=1e-4)]
    assert {"train/epoch_loss", "validation/epoch_accuracy"} <= {r["name"] for r in rows if r["rank"] is None}
    assert (Path(hpctf.attach(job_id).outputs) / "digits.keras").stat().st_size > 10_000
    # The README's chart and picture: this real training, kept in build/test-artifacts/.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chart = chart_and_png(slurm, home, job_id, ("loss", "val_accuracy"), ARTIFACTS / "metrics.png")
    (ARTIFACTS / "metrics-chart.txt").write_text(chart)


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_horovod_example_two_nodes_two_processes(slurm, home, launcher):
    job_id, logs = submit_cli(
        slurm,
        home,
        "--time",
        "10",
        "--backend",
        "mpi",
        "--launcher",
        launcher,
        "--nodes",
        "2",
        "--procs-per-node",
        "2",
        str(EXAMPLES / "horovod" / "train.py"),
        "--epochs",
        "20",
    )
    out = "\n".join(task_log(logs, job_id, rank) for rank in range(4))
    ranks = re.findall(r"^rank (\d)/(\d) local_rank \d host (\S+)", out, re.M)
    assert sorted(r for r, _, _ in ranks) == ["0", "1", "2", "3"] and {s for _, s, _ in ranks} == {"4"}, all_logs(
        logs, job_id
    )
    assert len({host for _, _, host in ranks}) == 2
    digests = re.findall(r"^rank \d/4 weights=(\w+)", out, re.M)
    assert len(digests) == 4 and len(set(digests)) == 1, f"ranks ended with different weights: {digests}"
    [accuracy] = accuracy_in(out)
    assert accuracy >= ACCURACY
    assert out.count("checkpoint ") == 1 and "samples/s=" in out


def test_parameter_server_example_from_its_estimator(home):
    # The test cluster's nodes share one network namespace with every other job here:
    # ports free now keep this run clear of other servers and TIME_WAITs.
    job_id, logs = submit_estimator("parameter_server", port_base=free_port_base(4))
    chief = task_log(logs, job_id, 0)  # roles in blocks: chief, ps, worker, worker
    [accuracy] = accuracy_in(chief)
    assert accuracy >= ACCURACY
    assert "ps 0 serving" in task_log(logs, job_id, 1)
    for worker_task in (2, 3):
        steps = task_log(logs, job_id, worker_task, "err").count("worker step")
        assert steps > 0, f"worker task {worker_task} executed no step:\n{all_logs(logs, job_id)}"
        assert "stopped: training finished" in task_log(logs, job_id, worker_task, "err")


def test_multi_worker_example_two_nodes(slurm, home):
    job_id, logs = submit_cli(
        slurm,
        home,
        "--time",
        "10",
        "--backend",
        "ps",
        "--ps",
        "0",
        "--workers",
        "2",
        "--nodes",
        "2",
        str(EXAMPLES / "multi_worker" / "train.py"),
    )
    accuracies = accuracy_in(task_log(logs, job_id, 0) + task_log(logs, job_id, 1))
    assert len(accuracies) == 2 and min(accuracies) >= ACCURACY


def test_sweep_example_tunes_the_single_example(slurm, home):
    """examples/sweep: its hpctf.Sweep, with a smaller budget (4 trials of 3 epochs), and
    its TOML file through the CLI (dry run): real TensorFlow trials whose recorded value is
    the last val_accuracy each logged through the Keras callback."""
    spec = importlib.util.spec_from_file_location("sweep_example", EXAMPLES / "sweep" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    example = module.sweep
    small = hpctf.Sweep(
        example.estimator.with_changes(script_params={"--epochs": 3}),
        list(example.config.params),
        **{k: getattr(example.config, k) for k in ("metric", "goal", "sampler", "early_stop", "parallel")},
        trials=4,
    )
    run = small.submit()
    run.wait(poll_s=2)
    trials = run.trials()
    assert len(trials) == 4 and {t.state for t in trials} <= {"COMPLETE", "PRUNED"}, trials
    for trial in trials:
        rows = [json.loads(line) for line in Path(trial.run_dir, "metrics", "rank-0.jsonl").read_text().splitlines()]
        logged = [r["value"] for r in rows if r["name"] == "val_accuracy"]
        assert trial.value == pytest.approx(logged[-1]), trial
        assert f"--learning-rate {trial.params['--learning-rate']}" in Path(trial.run_dir, "args").read_text(
            errors="replace"
        ).replace("\0", " ")
    best = run.best()
    assert best is not None and best.value >= ACCURACY - 0.1
    assert (Path(best.run_dir) / "outputs" / "digits.keras").stat().st_size > 10_000
    dry = hpctf_cli(
        slurm,
        home,
        "sweep",
        "--space",
        str(EXAMPLES / "sweep" / "sweep.toml"),
        "--dry-run",
        str(EXAMPLES / "single" / "train.py"),
        "--epochs",
        "5",
    )
    assert "#SBATCH --array=0-7%2" in dry and "tpe search for the max of val_accuracy" in dry
