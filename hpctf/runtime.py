"""What runs *inside* a job, in every task: node list -> task layout -> TF_CONFIG and GPU.

Every rendered script starts its training processes through this module::

    srun ... python -m hpctf.runtime [--ps N --workers M --chief] [--bind-gpu] -- python train.py

It reads what Slurm (or Open MPI's ``mpirun``) tells the task about itself, exports
``TF_CONFIG`` / ``CUDA_VISIBLE_DEVICES`` / ``HPCTF_RANK`` ..., then runs the training
command as its only child, forwarding signals, and exits with its exit code (leaving a
marker with that code when the task fails, see :func:`run_task`).

This module is on the start-up path of every task: it imports only the standard library
and ``hostlist`` (a single small module), never TensorFlow, Horovod or submitit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence

import hostlist

from .keras_policy import KerasPolicyError, keras_environment
from .ports import DEFAULT_PORT_BASE, job_port_base

# TF's SlurmClusterResolver assigns roles to blocks of ranks in sorted(job names) order;
# using the same order means a job placed by hpctf looks the same as one placed by TF.
ROLE_ORDER = ("chief", "ps", "worker")


class RuntimeSetupError(RuntimeError):
    """The task's environment does not describe a layout hpctf can use."""


# ---------------------------------------------------------------------------------------
# Node lists
# ---------------------------------------------------------------------------------------

_NODELIST_CHARS = re.compile(r"^[A-Za-z0-9_.\-\[\],]+$")


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm node list (``r[1-2]n[08-10],gpu-a.b``) in Slurm's own order.

    Agrees with ``scontrol show hostnames``: several bracket groups per name are
    expanded left to right, zero padding is kept, duplicates are kept in order.
    """
    text = nodelist.strip()
    if not text or not _NODELIST_CHARS.match(text):
        raise RuntimeSetupError(f"malformed Slurm node list {nodelist!r}")
    try:
        return hostlist.expand_hostlist(text, allow_duplicates=True)
    except hostlist.BadHostlist as err:
        raise RuntimeSetupError(f"malformed Slurm node list {nodelist!r}: {err}") from None


_TASK_COUNT = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def expand_tasks_per_node(spec: str) -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE`` / ``SLURM_STEP_TASKS_PER_NODE`` (``2(x3),1``)."""
    counts: list[int] = []
    for part in spec.strip().split(","):
        match = _TASK_COUNT.match(part.strip())
        if not match:
            raise RuntimeSetupError(f"malformed Slurm tasks-per-node value {spec!r}")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


def task_hosts(nodelist: str, tasks_per_node: str) -> list[str]:
    """Host of every task, by task id, for Slurm's default *block* distribution.

    Block distribution (``srun --distribution=block``, the default) gives consecutive
    task ids to a node until its share is used, then moves to the next node.
    """
    hosts = expand_nodelist(nodelist)
    counts = expand_tasks_per_node(tasks_per_node)
    if len(counts) != len(hosts):
        raise RuntimeSetupError(
            f"node list {nodelist!r} has {len(hosts)} nodes but tasks per node "
            f"{tasks_per_node!r} describes {len(counts)}"
        )
    return [host for host, count in zip(hosts, counts) for _ in range(count)]


# ---------------------------------------------------------------------------------------
# Roles and TF_CONFIG
# ---------------------------------------------------------------------------------------


def cluster_roles(ps: int, workers: int, chief: bool = False) -> list[tuple[str, int]]:
    """(type, index) of every task, by task id."""
    sizes = {"chief": int(chief), "ps": ps, "worker": workers}
    return [(role, index) for role in ROLE_ORDER for index in range(sizes[role])]


class TaskLayout:
    """Where every task of a ps/worker job runs and which address it listens on."""

    # A plain class: dataclasses imports inspect, ~10 ms on every task's start.
    def __init__(self, roles: list[tuple[str, int]], hosts: list[str], port_base: int = DEFAULT_PORT_BASE):
        self.roles, self.hosts, self.port_base = roles, hosts, port_base

    def address(self, task_id: int) -> str:
        # One port per task id, unique across the whole job: tasks that share a node
        # never collide, and neither do tasks of different "nodes" that share a network
        # namespace (containers, the test cluster, the local target).
        return f"{self.hosts[task_id]}:{self.port_base + task_id}"

    def cluster(self) -> dict[str, list[str]]:
        spec: dict[str, list[str]] = {}
        for task_id, (role, _) in enumerate(self.roles):
            spec.setdefault(role, []).append(self.address(task_id))
        return spec

    def tf_config(self, task_id: int) -> dict:
        role, index = self.roles[task_id]
        return {
            "cluster": self.cluster(),
            "task": {"type": role, "index": index},
            "environment": "cloud",
        }

    def gpu_slot(self, task_id: int) -> int | None:
        """Which of its node's GPUs a task uses; ``None`` for parameter servers.

        Parameter servers hold variables in host memory and get no GPU; the other tasks
        on a node take the node's GPUs in task-id order.
        """
        if self.roles[task_id][0] == "ps":
            return None
        host = self.hosts[task_id]
        return sum(1 for other in range(task_id) if self.hosts[other] == host and self.roles[other][0] != "ps")


def layout_from_slurm(
    env: Mapping[str, str], ps: int, workers: int, chief: bool, port_base: int | None = None
) -> TaskLayout:
    """The layout of the current job step, from the variables ``srun`` sets per task.

    ``port_base`` None: the job's own range, from ``SLURM_JOB_ID`` (:mod:`hpctf.ports`).
    """
    nodelist = _first(env, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    per_node = _first(env, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
    roles = cluster_roles(ps, workers, chief)
    hosts = task_hosts(nodelist, per_node)
    if len(hosts) != len(roles):
        raise RuntimeSetupError(
            f"the step has {len(hosts)} tasks but the cluster needs {len(roles)} "
            f"({ps} ps + {workers} worker{'s' if workers != 1 else ''}"
            f"{' + chief' if chief else ''}); launch it with srun --ntasks={len(roles)}"
        )
    if port_base is None:
        port_base = job_port_base(env.get("SLURM_JOB_ID"), len(roles))
    return TaskLayout(roles=roles, hosts=hosts, port_base=port_base)


def tf_config_for_task(
    env: Mapping[str, str],
    ps: int,
    workers: int,
    chief: bool = False,
    port_base: int | None = None,
) -> dict:
    """The ``TF_CONFIG`` of the current Slurm task (``SLURM_PROCID``)."""
    layout = layout_from_slurm(env, ps, workers, chief, port_base)
    return layout.tf_config(task_rank(env))


# ---------------------------------------------------------------------------------------
# Rank and GPU binding
# ---------------------------------------------------------------------------------------


def task_rank(env: Mapping[str, str]) -> int:
    # Under mpirun the application inherits the SLURM_PROCID of the orted step that
    # started it (the node's index, not the rank): Open MPI's own variables win.
    return int(_first(env, "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", default="0"))


def task_local_rank(env: Mapping[str, str]) -> int:
    return int(_first(env, "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", default="0"))


def task_world_size(env: Mapping[str, str]) -> int:
    return int(_first(env, "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", default="1"))


def pick_gpu(visible: str | None, slot: int | None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for a task using GPU ``slot`` of its node.

    Slurm sets ``CUDA_VISIBLE_DEVICES`` to every GPU the job holds on the node (with
    ``--gres=gpu:N``, all tasks of a node see the same N); each task keeps one of them.
    """
    if slot is None:
        return ""
    devices = [d for d in (visible or "").split(",") if d.strip()]
    if not devices:
        raise RuntimeSetupError(
            "a GPU was requested but Slurm gave this task no CUDA_VISIBLE_DEVICES "
            "(does the partition's gres.conf declare the GPUs?)"
        )
    if slot >= len(devices):
        raise RuntimeSetupError(
            f"this task needs GPU #{slot} of its node but Slurm gave it {len(devices)} "
            f"({','.join(devices)}): request more GPUs per node (--gres) or place fewer tasks per node"
        )
    return devices[slot]


# ---------------------------------------------------------------------------------------
# Servers that never return: stop them when the tasks driving training are done
# ---------------------------------------------------------------------------------------


def driver_roles(ps: int, chief: bool) -> set[str]:
    """Roles whose exit ends the job; the others serve until told to stop.

    With ParameterServerStrategy the chief drives and ps/workers run
    ``tf.distribute.Server(...).join()``, which never returns.  Without a chief the
    workers drive; without parameter servers (MultiWorkerMirroredStrategy) every task
    drives and nothing needs stopping.
    """
    if ps == 0:
        return {"chief", "worker"}
    return {"chief"} if chief else {"worker"}


SERVER_STOP_GRACE_S = 10.0


class Child:
    """The task's command, started with ``posix_spawn`` (``subprocess`` costs ~8 ms to
    import on every task's start); signals sent to this wrapper are passed on to it.

    Slurm signals every process of a step, but ``scancel --signal`` to the batch step or
    a local ``kill`` may reach only the wrapper: forwarding makes both work.
    """

    def __init__(self, command: list[str]):
        # Python ignores SIGPIPE and SIGXFSZ for itself; the child gets the defaults back.
        self.pid = os.posix_spawnp(command[0], command, os.environ, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
        self.returncode: int | None = None
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, lambda s, _f: self.send_signal(s))

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = exit_status(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status (128+N if killed by signal N), or None after ``timeout`` s."""
        if timeout is None and self.returncode is None:
            self.returncode = exit_status(os.waitpid(self.pid, 0)[1])
        deadline = time.monotonic() + (timeout or 0)
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.returncode

    def stop(self, grace_s: float) -> None:
        self.send_signal(signal.SIGTERM)
        if self.wait(grace_s) is None:
            self.send_signal(signal.SIGKILL)
            self.wait()


def exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell says


def run_task(command: list[str], rank: int, failure_dir: str | None) -> int:
    """Run one task; if it fails, leave ``<job>_<rank>_failed`` holding its exit code.

    When a task fails, ``srun --kill-on-bad-exit`` stops the others and itself exits 143,
    and ``mpirun`` exits 1: the marker is how hpctf reports the task's own exit code.
    """
    code = Child(command).wait()
    if code and failure_dir:
        record_failure(failure_dir, os.environ.get("SLURM_JOB_ID", "0"), rank, code)
    return code


def record_failure(folder: str, job_id: str, rank: int, code: int) -> None:
    try:
        _write_marker(os.path.join(folder, f"{job_id}_{rank}_failed"), code)
    except OSError:
        pass  # the exit code still reaches srun; only the detail is lost


def run_supervised(command: list[str], rank: int, role: str, drivers: list[int], done_dir: str) -> int:
    """Run ``command`` as a child; drivers leave a marker, servers stop at all markers."""
    child = Child(command)
    if rank in drivers:
        code = child.wait()
        _write_marker(os.path.join(done_dir, str(rank)), code)
        return code
    markers = [os.path.join(done_dir, str(r)) for r in drivers]
    while child.poll() is None:
        if all(os.path.exists(m) for m in markers):
            child.stop(SERVER_STOP_GRACE_S)
            print(f"hpctf.runtime: {role} task {rank} stopped: training finished", file=sys.stderr)
            return 0
        time.sleep(0.2)
    return child.returncode


def _write_marker(path: str, code: int) -> None:
    # Written then renamed, so a process polling on another node never sees half a file.
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Checkpoint requests: preemption and time limits (requeue=True)
# ---------------------------------------------------------------------------------------
#
# With requeue=True the job script exports HPCTF_CHECKPOINT_SIGNAL=USR1 and, when Slurm
# signals it before the time limit (or `scancel --signal=USR1 --batch JOB`), passes the
# signal to every task. A training script asks between steps::
#
#     from hpctf.runtime import install, should_checkpoint, restart_count
#     install()                   # at start, in the main thread
#     ...resume from the latest checkpoint, if any...
#     for step in range(start, steps):
#         train_step()
#         if should_checkpoint():  # the job is about to stop
#             save(step); sys.exit(0)
#
# and the job requeues itself; the next attempt resumes from that checkpoint. Standard
# library only, like the rest of this module: no TensorFlow.

CHECKPOINT_SIGNAL_ENV = "HPCTF_CHECKPOINT_SIGNAL"
_checkpoint = {"installed": False, "requested": False}


def checkpoint_signal(env: Mapping[str, str] | None = None) -> int:
    """The signal that asks for a checkpoint: ``$HPCTF_CHECKPOINT_SIGNAL``, else SIGUSR1."""
    name = (os.environ if env is None else env).get(CHECKPOINT_SIGNAL_ENV) or "USR1"
    number = getattr(signal, "SIG" + name.upper().removeprefix("SIG"), None)
    if not isinstance(number, signal.Signals):
        raise RuntimeSetupError(f"{CHECKPOINT_SIGNAL_ENV}={name!r} is not a signal name such as USR1")
    return number


def install(*signals: int) -> None:
    """From now on, note a checkpoint request instead of dying of it.

    Listens for the checkpoint signal (SIGUSR1) and for ``signals``: pass
    ``signal.SIGTERM`` to save on ``scancel`` and on preemption as well (Slurm's KillWait,
    30 s by default, is then all the time there is). Call it early, from the main thread
    (Python runs signal handlers there); :func:`should_checkpoint` calls it if needed.
    """
    signums = (checkpoint_signal(), *signals)
    for signum in signums:
        signal.signal(signum, _note_checkpoint_request)
    # Python puts its handlers back to the default (for SIGUSR1: terminate) as it shuts
    # down, and shutting down TensorFlow/Horovod takes seconds, while the job script may
    # repeat the request: ignore it from the end of the program on.
    import atexit

    atexit.register(_ignore_at_exit, signums)
    _checkpoint["installed"] = True


def _ignore_at_exit(signums) -> None:
    for signum in signums:
        signal.signal(signum, signal.SIG_IGN)


def _note_checkpoint_request(_signum, _frame) -> None:
    _checkpoint["requested"] = True


def should_checkpoint() -> bool:
    """True once the job has been asked to stop: save a checkpoint, then exit with 0.

    Cheap enough to call after every step (it reads a flag). Under Horovod, ranks see the
    signal at slightly different steps: agree first (an allreduce of the flag with op
    Max), so every rank stops after the same step.
    """
    if not _checkpoint["installed"]:
        install()
    return _checkpoint["requested"]


def restart_count(env: Mapping[str, str] | None = None) -> int:
    """How often Slurm has requeued this job: 0 on the first run (``SLURM_RESTART_COUNT``)."""
    value = (os.environ if env is None else env).get("SLURM_RESTART_COUNT", "")
    return int(value) if value.strip().isdigit() else 0


def _start_with_checkpoint_signal_ignored() -> None:
    """Requeue jobs: the command starts with the checkpoint signal ignored (an ignored
    signal stays ignored across exec), so a request that comes before the training calls
    :func:`install` cannot kill it; the job script repeats the signal until tasks stop.
    The signal still reaches this wrapper, which passes it on (:class:`Child`)."""
    if os.environ.get(CHECKPOINT_SIGNAL_ENV):
        signal.signal(checkpoint_signal(), signal.SIG_IGN)


# ---------------------------------------------------------------------------------------
# Entry point: python -m hpctf.runtime [options] -- command ...
# ---------------------------------------------------------------------------------------


def task_environment(
    env: Mapping[str, str],
    *,
    ps: int | None = None,
    workers: int | None = None,
    chief: bool = False,
    port_base: int | None = None,
    bind_gpu: bool = False,
    keras: str | None = None,
) -> dict[str, str]:
    """The variables hpctf adds to one task's environment (reads ``env``, and with
    ``keras`` looks up whether tf-keras is installed: :mod:`hpctf.keras_policy`)."""
    rank, local_rank = task_rank(env), task_local_rank(env)
    out = {
        "HPCTF_RANK": str(rank),
        "HPCTF_LOCAL_RANK": str(local_rank),
        "HPCTF_WORLD_SIZE": str(task_world_size(env)),
    }
    if keras is not None:
        out.update(keras_environment(keras, env))
    slot: int | None = local_rank
    if workers is not None:
        layout = layout_from_slurm(env, ps or 0, workers, chief, port_base)
        out["TF_CONFIG"] = json.dumps(layout.tf_config(rank), separators=(",", ":"))
        slot = layout.gpu_slot(rank)
        if slot is None:  # parameter servers never take GPU memory
            out["CUDA_VISIBLE_DEVICES"] = ""
    if bind_gpu and slot is not None:
        out["CUDA_VISIBLE_DEVICES"] = pick_gpu(env.get("CUDA_VISIBLE_DEVICES"), slot)
    return out


def redirect_task_output(folder: str, job_id: str, rank: int) -> None:
    """Per-rank log files under mpirun, named as srun --output=%j_%t_log.out names them.

    srun writes one file per task itself; Open MPI's mpirun would mix every rank into the
    batch step's output, so each rank sends its own stdout/stderr to its file.
    """
    for fd, stream in ((1, "out"), (2, "err")):
        path = os.path.join(folder, f"{job_id}_{rank}_log.{stream}")
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)


def _first(env: Mapping[str, str], *names: str, default: str | None = None) -> str:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            return value
    if default is not None:
        return default
    raise RuntimeSetupError(f"none of {', '.join(names)} is set: is this running inside a Slurm job step?")


USAGE = """usage: python -m hpctf.runtime [--ps N --workers M [--chief] [--port-base P]]
                              [--bind-gpu] [--keras MODE] [--done-dir DIR]
                              [--task-logs DIR] [--print] -- COMMAND [ARG ...]

Set TF_CONFIG / CUDA_VISIBLE_DEVICES / HPCTF_RANK ... for this Slurm task, then run COMMAND.
  --ps N, --workers M, --chief   the ps/worker/chief cluster: TF_CONFIG from Slurm's node list
  --port-base P                  first task's port; task i listens on P+i (default: the
                                 job's own range, from SLURM_JOB_ID, within 10000-31999)
  --bind-gpu                     keep one GPU per task (its local rank's)
  --keras MODE                   which Keras tf.keras is: auto (tf-keras where installed,
                                 unless TF_USE_LEGACY_KERAS is set), legacy (tf-keras) or 3
  --done-dir DIR                 shared folder for end-of-training markers (ps servers stop)
  --task-logs DIR                write this task's output to DIR/<job>_<rank>_log.out/.err
  --print                        print the variables and run nothing
"""

_VALUE_OPTIONS = {
    "--ps": int,
    "--workers": int,
    "--port-base": int,
    "--done-dir": str,
    "--task-logs": str,
    "--keras": str,
}
_FLAGS = ("--chief", "--bind-gpu", "--print")


def parse_arguments(argv: Sequence[str]) -> tuple[dict, list[str]]:
    """Options up to ``--`` (or the first word that is not one), then the command.

    Hand-written rather than argparse, which costs ~15 ms to import: this runs at the
    start of every task of every job.
    """
    options: dict = {
        "ps": None,
        "workers": None,
        "port_base": None,
        "done_dir": None,
        "task_logs": None,
        "keras": None,
        "chief": False,
        "bind_gpu": False,
        "print": False,
    }
    args = list(argv)
    while args:
        word = args.pop(0)
        if word == "--":
            break
        name, sep, value = word.partition("=")
        if name in _FLAGS and not sep:
            options[name[2:].replace("-", "_")] = True
        elif name in _VALUE_OPTIONS:
            if not sep:
                if not args:
                    raise ValueError(f"{name} needs a value")
                value = args.pop(0)
            try:
                options[name[2:].replace("-", "_")] = _VALUE_OPTIONS[name](value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a valid value") from None
        elif word in ("-h", "--help"):
            raise SystemExit(print(USAGE) or 0)
        elif word.startswith("-"):
            raise ValueError(f"unknown option {word!r}")
        else:
            args.insert(0, word)
            break
    return options, args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        opts, command = parse_arguments(sys.argv[1:] if argv is None else argv)
        if opts["ps"] is not None and opts["workers"] is None:
            opts["workers"] = 0
        extra = task_environment(
            os.environ,
            ps=opts["ps"],
            workers=opts["workers"],
            chief=opts["chief"],
            port_base=opts["port_base"],
            bind_gpu=opts["bind_gpu"],
            keras=opts["keras"],
        )
        _start_with_checkpoint_signal_ignored()
    except (RuntimeSetupError, KerasPolicyError, ValueError) as err:
        print(f"hpctf.runtime: {err}", file=sys.stderr)
        return 2
    if opts["print"] or not command:
        for key, value in extra.items():
            print(f"{key}={value}")
        return 0
    os.environ.update(extra)
    rank = int(extra["HPCTF_RANK"])
    if opts["task_logs"]:
        redirect_task_output(opts["task_logs"], os.environ.get("SLURM_JOB_ID", "local"), rank)
    failure_dir = os.environ.get("HPCTF_LOG_DIR")
    try:
        if opts["done_dir"] and opts["workers"] is not None and (opts["ps"] or 0) > 0:
            roles = cluster_roles(opts["ps"], opts["workers"], opts["chief"])
            drivers = driver_roles(opts["ps"], opts["chief"])
            driver_ranks = [r for r, (role, _) in enumerate(roles) if role in drivers]
            code = run_supervised(command, rank, roles[rank][0], driver_ranks, opts["done_dir"])
            if code and failure_dir:
                record_failure(failure_dir, os.environ.get("SLURM_JOB_ID", "0"), rank, code)
            return code
        return run_task(command, rank, failure_dir)
    except OSError as err:  # the command does not exist or cannot be run
        print(f"hpctf.runtime: cannot run {command[0]!r}: {err}", file=sys.stderr)
        if failure_dir:
            record_failure(failure_dir, os.environ.get("SLURM_JOB_ID", "0"), rank, 127)
        return 127


if __name__ == "__main__":
    sys.exit(main())
