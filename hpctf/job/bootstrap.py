"""What runs *inside* a job, in every task: node list -> task layout -> TF_CONFIG and GPU.

Every rendered script starts its training processes through this module::

    srun ... python -m hpctf.runtime [--ps N --workers M --chief] [--bind-gpu] -- python train.py

It reads what Slurm (or Open MPI's ``mpirun``) tells the task about itself, exports
``TF_CONFIG`` / ``CUDA_VISIBLE_DEVICES`` / ``HPCTF_RANK`` ..., then runs the training
command as its only child, forwarding signals, and exits with its exit code (leaving a
marker with that code when the task fails, see :mod:`hpctf.job.supervise`).

This module is on the start-up path of every task: it imports only the standard library
and ``hostlist`` (a single small module), never TensorFlow, Horovod or submitit; and of
the standard library not ``subprocess``, ``argparse``, ``dataclasses``, ``inspect`` or
``json``, which cost milliseconds to import on every task's start. Tasks without a
ps/worker layout (one process, MPI) do not even load the node-list code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from .args import FLAG, parse_command_line
from .taskenv import (
    CHECKPOINT_SIGNAL_ENV,
    OUTSIDE_A_JOB,
    RuntimeSetupError,
    job_id,
    task_local_rank,
    task_rank,
    task_world_size,
)

# The other modules of hpctf.job are imported where they are needed: a task pays only for
# what its job uses (no layout for one-process and MPI jobs, no GPU pick without
# --bind-gpu, nothing for running a command under --print).


def task_environment(
    env: Mapping[str, str],
    *,
    ps: int | None = None,
    workers: int | None = None,
    chief: bool = False,
    port_base: int | None = None,
    bind_gpu: bool = False,
    keras: str | None = None,
    het: bool = False,
) -> dict[str, str]:
    """The variables hpctf adds to one task's environment (reads ``env``, and with
    ``keras`` looks up whether tf-keras is installed: :mod:`hpctf.job.keras_policy`)."""
    rank, local_rank = task_rank(env), task_local_rank(env)
    out = {
        "HPCTF_RANK": str(rank),
        "HPCTF_LOCAL_RANK": str(local_rank),
        "HPCTF_WORLD_SIZE": str(task_world_size(env)),
    }
    if keras is not None:
        from .keras_policy import keras_environment

        out.update(keras_environment(keras, env))
    slot: int | None = local_rank
    if workers is not None:
        from .layout import layout_from_slurm

        layout = layout_from_slurm(env, ps or 0, workers, chief, port_base, het)
        out["TF_CONFIG"] = layout.tf_config_json(rank)
        slot = layout.gpu_slot(rank)
        if slot is None:  # parameter servers never take GPU memory
            out["CUDA_VISIBLE_DEVICES"] = ""
    if bind_gpu and slot is not None:
        from .gpus import pick_gpu

        out["CUDA_VISIBLE_DEVICES"] = pick_gpu(env.get("CUDA_VISIBLE_DEVICES"), slot)
    return out


USAGE = """usage: python -m hpctf.runtime [--ps N --workers M [--chief] [--het] [--port-base P]]
                              [--bind-gpu] [--keras MODE] [--done-dir DIR]
                              [--task-logs DIR] [--print] -- COMMAND [ARG ...]

Set TF_CONFIG / CUDA_VISIBLE_DEVICES / HPCTF_RANK ... for this Slurm task, then run COMMAND.
  --ps N, --workers M, --chief   the ps/worker/chief cluster: TF_CONFIG from Slurm's node list
  --het                          a heterogeneous job: parameter servers are the first
                                 component's tasks, chief and workers the second's
  --port-base P                  first task's port; task i listens on P+i (default: the
                                 job's own range, from SLURM_JOB_ID, within 10000-31999)
  --bind-gpu                     keep one GPU per task (its local rank's)
  --keras MODE                   which Keras tf.keras is: auto (tf-keras where installed,
                                 unless TF_USE_LEGACY_KERAS is set), legacy (tf-keras) or 3
  --done-dir DIR                 shared folder for end-of-training markers (ps servers stop)
  --task-logs DIR                write this task's output to DIR/<job>_<rank>_log.out/.err
  --print                        print the variables and run nothing
"""

OPTIONS = {
    "--ps": int,
    "--workers": int,
    "--port-base": int,
    "--done-dir": str,
    "--task-logs": str,
    "--keras": str,
    "--chief": FLAG,
    "--het": FLAG,
    "--bind-gpu": FLAG,
    "--print": FLAG,
}
DEFAULTS = {"ps": None, "workers": None, "port_base": None, "done_dir": None, "task_logs": None, "keras": None}


def parse_arguments(argv: Sequence[str]) -> tuple[dict, list[str]]:
    """The bootstrap's options (every one present, defaults filled in) and the command."""
    given, command = parse_command_line(argv, OPTIONS, usage=USAGE)
    options = {**DEFAULTS, "chief": False, "het": False, "bind_gpu": False, "print": False, **given}
    if options["ps"] is not None and options["workers"] is None:
        options["workers"] = 0
    return options, command


def main(argv: Sequence[str] | None = None) -> int:
    try:
        opts, command = parse_arguments(sys.argv[1:] if argv is None else argv)
        extra = task_environment(
            os.environ,
            **{k: opts[k] for k in ("ps", "workers", "chief", "port_base", "bind_gpu", "keras", "het")},
        )
        if os.environ.get(CHECKPOINT_SIGNAL_ENV):
            from .checkpoint import start_with_checkpoint_signal_ignored

            start_with_checkpoint_signal_ignored()
    except (RuntimeSetupError, ValueError) as err:  # KerasPolicyError is a RuntimeSetupError
        print(f"hpctf.runtime: {err}", file=sys.stderr)
        return 2
    if opts["print"] or not command:
        for key, value in extra.items():
            print(f"{key}={value}")
        return 0
    os.environ.update(extra)
    rank = int(extra["HPCTF_RANK"])
    if opts["task_logs"]:
        from .logs import redirect_output, task_log_files

        redirect_output(*task_log_files(opts["task_logs"], job_id(os.environ, OUTSIDE_A_JOB), rank))
    failure_dir = os.environ.get("HPCTF_LOG_DIR")
    try:
        return run(opts, command, rank, failure_dir)
    except OSError as err:  # the command does not exist or cannot be run
        from .supervise import report_failure

        print(f"hpctf.runtime: cannot run {command[0]!r}: {err}", file=sys.stderr)
        return report_failure(127, rank, failure_dir)


def run(opts: dict, command: list[str], rank: int, failure_dir: str | None) -> int:
    """The command as this task: supervised (ps jobs with a done folder) or plain."""
    from .supervise import report_failure, run_supervised, run_task

    if opts["done_dir"] and opts["workers"] is not None and (opts["ps"] or 0) > 0:
        from .roles import cluster_roles, driver_ranks

        role = cluster_roles(opts["ps"], opts["workers"], opts["chief"], opts["het"])[rank][0]
        drivers = driver_ranks(opts["ps"], opts["workers"], opts["chief"], opts["het"])
        code = run_supervised(command, rank, role, drivers, opts["done_dir"])
        return report_failure(code, rank, failure_dir)
    return run_task(command, rank, failure_dir)


if __name__ == "__main__":
    sys.exit(main())
