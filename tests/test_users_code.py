"""Users' own training code runs unmodified on the default stack, with only the shape.

The scripts in tests/programs/users/ use TensorFlow and Horovod the way Horovod's examples
(examples/tensorflow2/) and TensorFlow's distributed tutorials (multi_worker_with_keras,
parameter_server_training) do, on generated data, with no hpctf import and no environment
variable of their own. Each runs through `hpctf submit` on the test cluster with nothing
but the shape options (no --env, no --keras: the default Keras policy must make them work)
and must end COMPLETED, exit code 0, with the training's own progress in `hpctf logs`.
The Keras-policy tests show which Keras `tf.keras` is under each policy, and that code
written against Keras 3 keeps working.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .training import HPCTF, all_logs, hpctf_env, submit_cli

pytestmark = [pytest.mark.slurm, pytest.mark.tensorflow]

USERS = Path(__file__).resolve().parent / "programs" / "users"
HOROVOD_SHAPE = ("--backend", "mpi", "--nodes", "2", "--procs-per-node", "2")
MULTI_WORKER_SHAPE = ("--backend", "ps", "--ps", "0", "--workers", "2", "--nodes", "2")
PARAMETER_SERVER_SHAPE = ("--backend", "ps", "--ps", "2", "--workers", "3", "--chief", "--nodes", "3")


def hpctf_cli(slurm, home: Path, *args: str) -> str:
    done = subprocess.run([HPCTF, *args], capture_output=True, text=True, env=hpctf_env(slurm, home), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_users_script(
    slurm, home: Path, script: str, *shape: str, args: tuple[str, ...] = (), env=None
) -> tuple[str, dict]:
    """Submit, wait; (job id, `hpctf status --json`), after checking it ended COMPLETED/0."""
    job_id, logs = submit_cli(slurm, home, *shape, str(USERS / script), *args, timeout=600, env=env)
    status = json.loads(hpctf_cli(slurm, home, "status", job_id, "--json"))
    assert (status["state"], status["exit_code"]) == ("COMPLETED", 0), all_logs(logs, job_id)
    return job_id, status


def logs_of(slurm, home: Path, job_id: str, task: int = 0, err: bool = False) -> str:
    return hpctf_cli(slurm, home, "logs", job_id, "--task", str(task), *(["--err"] if err else []))


@pytest.mark.parametrize("optimizer", ["tf.optimizers", "legacy"])
def test_horovod_keras_fit_with_distributed_optimizer_and_callbacks(slurm, home, optimizer):
    args = ("--legacy-optimizers",) if optimizer == "legacy" else ()
    job_id, status = run_users_script(slurm, home, "horovod_keras_fit.py", *HOROVOD_SHAPE, args=args)
    out = logs_of(slurm, home, job_id)
    assert "Epoch 4/4" in out and "finished gradual learning rate warmup" in out, out
    [accuracy] = re.findall(r"final accuracy ([0-9.]+)", out)
    assert float(accuracy) > 0.5  # ten classes: chance is 0.1
    assert sorted(p.name for p in (Path(status["run_dir"]) / "code").glob("checkpoint-*.h5")) == [
        f"checkpoint-{e}.h5" for e in range(1, 5)
    ]


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_horovod_custom_loop_with_distributed_gradient_tape(slurm, home, launcher):
    job_id, status = run_users_script(slurm, home, "horovod_tape.py", *HOROVOD_SHAPE, "--launcher", launcher)
    # local_rank 0 of each node prints: ranks 0 and 2, each in its own log.
    for task in (0, 2):
        losses = [
            float(v) for v in re.findall(r"^Step #\d+\tLoss: ([0-9.e-]+)$", logs_of(slurm, home, job_id, task), re.M)
        ]
        assert len(losses) == 10 and losses[-1] < losses[0] / 2, losses
    assert "checkpoint ./checkpoints-1" in logs_of(slurm, home, job_id)


def test_multi_worker_mirrored_strategy_with_model_fit(slurm, home):
    job_id, _ = run_users_script(slurm, home, "multi_worker_fit.py", *MULTI_WORKER_SHAPE)
    for worker in (0, 1):
        out = logs_of(slurm, home, job_id, worker)
        assert "Epoch 3/3" in out, out
        assert re.search(rf"worker {worker} of 2: final accuracy", out), out


# The same cluster as a heterogeneous job (issue 19): the parameter servers on the `cpu`
# partition, the chief and workers on `gpu`; tasks numbered ps, ps, chief, worker x 3.
HETEROGENEOUS_SHAPE = (*PARAMETER_SERVER_SHAPE[:-1], "2", "--ps-partition", "cpu", "--partition", "gpu")
PS_SHAPES = {"one-partition": (PARAMETER_SERVER_SHAPE, 0), "heterogeneous": (HETEROGENEOUS_SHAPE, 2)}


@pytest.mark.parametrize("shape", sorted(PS_SHAPES))
def test_parameter_server_strategy_with_model_fit(slurm, home, shape):
    options, chief_task = PS_SHAPES[shape]
    job_id, status = run_users_script(slurm, home, "parameter_server_fit.py", *options)
    chief = logs_of(slurm, home, job_id, chief_task)  # roles in blocks chief, ps, ps, worker x 3 (het: ps first)
    assert "Epoch 5/5" in chief, chief
    [(first, last)] = re.findall(r"chief: loss ([0-9.]+) -> ([0-9.]+)", chief)
    assert float(last) < float(first)
    for task in set(range(6)) - {chief_task}:  # the servers never return: hpctf stops them after the chief
        assert "stopped: training finished" in logs_of(slurm, home, job_id, task, err=True)
    assert (Path(status["run_dir"]) / "code" / "ps_fit_work" / "ckpt").exists()


@pytest.mark.parametrize("shape", sorted(PS_SHAPES))
def test_parameter_server_strategy_with_cluster_coordinator_loop(slurm, home, shape):
    options, chief_task = PS_SHAPES[shape]
    job_id, _ = run_users_script(slurm, home, "parameter_server_loop.py", *options)
    chief = logs_of(slurm, home, job_id, chief_task)
    assert "embedding in 2 shard(s) on" in chief and "/job:ps/replica:0/task:1" in chief, chief
    assert "Finished epoch 3, accuracy is" in chief and "Final loss is" in chief, chief


# ---------------------------------------------------------------------------------------
# The Keras policy, seen from inside the tasks
# ---------------------------------------------------------------------------------------


def keras_seen(slurm, home: Path, *options: str, env=None) -> set[str]:
    """Run the Keras 3 Horovod loop with OPTIONS on one node, 2 ranks; what tf.keras was."""
    job_id, _ = run_users_script(slurm, home, "keras3_horovod_loop.py", *options, env=env)
    out = logs_of(slurm, home, job_id) + logs_of(slurm, home, job_id, 1)
    assert "epoch 5/5 loss=" in out, out
    return set(re.findall(r"tf\.keras is (\w+)", out))


def test_keras_3_code_runs_under_the_default_policy_and_tf_keras_is_the_legacy_one(slurm, home):
    assert keras_seen(slurm, home, "--backend", "mpi", "--procs-per-node", "2") == {"tf_keras"}


def test_keras_3_opt_out_and_the_users_own_variable_win(slurm, home):
    assert keras_seen(slurm, home, "--backend", "mpi", "--procs-per-node", "2", "--keras", "3") == {"keras"}
    # TF_USE_LEGACY_KERAS in the submitting shell reaches the tasks (sbatch passes the
    # environment on), and "auto" leaves it as the user set it.
    own = hpctf_env(slurm, home, TF_USE_LEGACY_KERAS="0")
    assert keras_seen(slurm, home, "--backend", "mpi", "--procs-per-node", "2", env=own) == {"keras"}
