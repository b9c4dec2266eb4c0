"""The per-rank program of ``hpctf doctor``: it runs as the entry script of the doctor job.

``hpctf doctor`` copies this file into a source folder of its own and submits it through
the same rendering and submission path as any job, so it starts exactly as training would
(``srun``/``mpirun`` -> ``python -m hpctf.runtime`` -> this script). Every rank writes what
it found to ``$HPCTF_LOG_DIR/doctor_<job>_<rank>.json`` (rewritten after each phase, so a
rank that hangs or dies still leaves what it had), and always exits 0: a failing rank
would make ``srun --kill-on-bad-exit`` stop the others before they report. The doctor
reads the files and judges them (:mod:`hpctf.doctor`).

Standard library only at the top; TensorFlow and Horovod are imported in a child process
(so a crash while importing them, e.g. an illegal instruction, is reported, not fatal),
mpi4py in the rank itself. The last phase of an ``mpi`` doctor job trains a step through
Horovod's Keras layer in every rank, since it needs the ranks' MPI world: it runs after
every other report is written, and a rank that dies in it leaves ``phase: keras``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import socket
import subprocess
import sys
import time

from hpctf.job import taskenv
from hpctf.job.args import FLAG, parse_command_line

PHASE_STARTED, PHASE_MPI, PHASE_KERAS, PHASE_DONE = "started", "mpi", "keras", "done"


def report_name(job_id: str, rank: int | str) -> str:
    """Each rank's report in the run's log folder (``*`` for rank: every rank's)."""
    return f"doctor_{job_id}_{rank}.json"


# Run in a fresh interpreter on one rank per node: versions, Horovod's build, GPUs TF sees.
ENV_CHECK = r"""
import json, os, sys
out = {}
try:
    import tensorflow as tf
    out["tensorflow"] = tf.__version__
    out["legacy_keras_env"] = os.environ.get("TF_USE_LEGACY_KERAS")
    try:  # which Keras tf.keras is: keras (3) or tf_keras (2), as hpctf's policy chose
        package = tf.keras.__name__.split(".")[0]
        out["keras"] = f"{package} {sys.modules[package].__version__}"
    except BaseException as err:
        out["keras_error"] = f"{type(err).__name__}: {err}"
    if "--gpus" in sys.argv:
        out["tf_gpus"] = len(tf.config.list_physical_devices("GPU"))
        out["tf_cuda_build"] = bool(tf.test.is_built_with_cuda())
except BaseException as err:
    out["tensorflow_error"] = f"{type(err).__name__}: {err}"
if "--horovod" in sys.argv and "tensorflow" in out:
    try:
        import horovod
        import horovod.tensorflow as hvd
        out["horovod"] = horovod.__version__
        out["horovod_mpi"] = bool(hvd.mpi_built())
    except BaseException as err:
        out["horovod_error"] = f"{type(err).__name__}: {err}"
print("HPCTF-ENV " + json.dumps(out), flush=True)
"""


OPTIONS = {
    "--tasks": int,
    "--timeout": float,
    "--launcher": str,
    **{f"--{flag}": FLAG for flag in ("mpi", "ports", "env", "horovod", "gpus", "keras")},
}
DEFAULTS = {
    "tasks": 1,
    "mpi": False,
    "ports": False,
    "env": False,
    "horovod": False,
    "gpus": False,
    "keras": False,
    "timeout": 120.0,
    "launcher": "",
}


def parse(argv: list[str]) -> dict:
    return {**DEFAULTS, **parse_command_line(argv, OPTIONS)[0]}


class Report:
    """This rank's findings, written atomically to the shared log folder."""

    def __init__(self, folder: str, job_id: str, rank: int):
        self.path = os.path.join(folder, report_name(job_id, rank))
        self.data: dict = {}

    def write(self, phase: str) -> None:
        self.data["phase"] = phase
        self.data["time"] = time.time()
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


def identity() -> dict:
    env = os.environ
    return {
        "rank": int(env.get("HPCTF_RANK", "-1")),
        "local_rank": int(env.get("HPCTF_LOCAL_RANK", "-1")),
        "world_size": int(env.get("HPCTF_WORLD_SIZE", "0")),
        "host": socket.gethostname(),
        "slurm_procid": env.get("SLURM_PROCID"),
        "slurm_localid": env.get("SLURM_LOCALID"),
        "slurm_nodeid": env.get("SLURM_NODEID"),
        "ompi_rank": env.get("OMPI_COMM_WORLD_RANK"),
        "ompi_local_rank": env.get("OMPI_COMM_WORLD_LOCAL_RANK"),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "nvidia_driver": os.path.exists("/proc/driver/nvidia/version"),
        "python": sys.executable,
        "python_version": sys.version.split()[0],
        "pid": os.getpid(),
        "tf_config": json.loads(env["TF_CONFIG"]) if env.get("TF_CONFIG") else None,
        "het_groups": het_groups(env),
    }


def het_groups(env) -> list[dict] | None:
    """A heterogeneous job's components, as every task sees them: partition and nodes of
    each (``SLURM_JOB_PARTITION`` is only the last component's); None: not heterogeneous."""
    try:
        size = int(env.get("SLURM_HET_SIZE", ""))
    except ValueError:
        return None
    groups = []
    for group in range(size):
        nodelist = env.get(f"SLURM_JOB_NODELIST_HET_GROUP_{group}", "")
        groups.append(
            {
                "partition": env.get(f"SLURM_JOB_PARTITION_HET_GROUP_{group}"),
                "nodelist": nodelist,
                "nodes": expand(nodelist) if nodelist else [],
            }
        )
    return groups


def expand(nodelist: str) -> list[str]:
    try:
        from hpctf.job.nodelist import expand_nodelist

        return expand_nodelist(nodelist)
    except Exception:  # noqa: BLE001 - fall back on Slurm's own tool
        done = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        return done.stdout.split()


def node_names() -> list[str]:
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST") or ""
    if not nodelist:
        return [socket.gethostname()]
    return expand(nodelist)


def resolve(names: list[str]) -> dict:
    out = {}
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            out[name] = {"addresses": sorted({info[4][0] for info in infos})}
        except OSError as err:
            out[name] = {"error": str(err)}
    return out


def environment_check(horovod: bool, gpus: bool) -> dict:
    command = [sys.executable, "-c", ENV_CHECK] + (["--horovod"] if horovod else []) + (["--gpus"] if gpus else [])
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "importing TensorFlow took longer than 300 s"}
    out: dict = {"seconds": round(time.monotonic() - started, 1)}
    for line in done.stdout.splitlines():
        if line.startswith("HPCTF-ENV "):
            out.update(json.loads(line[len("HPCTF-ENV ") :]))
            break
    else:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        out["error"] = f"the import check exited with {done.returncode} and no result: {tail}"
    return out


def mpi_check(expected: int) -> dict:
    """An allreduce over every rank; mpi4py, else Horovod (which training uses anyway)."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        mpi4py_error = str(err)
    else:
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
        total = comm.allreduce(rank, op=MPI.SUM)
        hosts = comm.allgather(socket.gethostname())
        library = MPI.Get_library_version().strip().splitlines()[0].split(",")[0].strip()
        return {
            "via": "mpi4py",
            "rank": rank,
            "size": size,
            "sum": total,
            "hosts": sorted(set(hosts)),
            "library": library,
        }
    try:
        import horovod.tensorflow as hvd
        import tensorflow as tf

        hvd.init()
        total = hvd.allreduce(tf.constant(float(hvd.rank())), op=hvd.Sum)
        return {"via": "horovod", "rank": hvd.rank(), "size": hvd.size(), "sum": int(total.numpy())}
    except Exception as err:  # noqa: BLE001
        return {
            "error": f"neither mpi4py ({mpi4py_error}) nor Horovod could run an allreduce: {type(err).__name__}: {err}"
        }


def horovod_keras_check() -> dict:
    """A step of Keras ``fit`` through Horovod's Keras layer, on every rank, the way
    Horovod's examples use it: ``DistributedOptimizer``, ``compile(...,
    experimental_run_tf_function=False)`` and its three usual callbacks."""
    try:
        import horovod.tensorflow.keras as hvd
        import numpy as np
        import tensorflow as tf

        hvd.init()
        package = tf.keras.__name__.split(".")[0]
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
        lr = 0.01 * hvd.size()
        model.compile(
            loss="mse", optimizer=hvd.DistributedOptimizer(tf.optimizers.Adam(lr)), experimental_run_tf_function=False
        )
        callbacks = [
            hvd.callbacks.BroadcastGlobalVariablesCallback(0),
            hvd.callbacks.MetricAverageCallback(),
            hvd.callbacks.LearningRateWarmupCallback(initial_lr=lr, warmup_epochs=1),
        ]
        history = model.fit(
            np.ones((16, 4), "float32"),
            np.ones((16, 1), "float32"),
            batch_size=8,
            epochs=1,
            callbacks=callbacks,
            verbose=0,
        )
        return {
            "keras": f"{package} {sys.modules[package].__version__}",
            "size": hvd.size(),
            "loss": float(history.history["loss"][-1]),
        }
    except Exception as err:  # noqa: BLE001 - reported, judged by the doctor
        return {"error": f"{type(err).__name__}: {err}"}


def listen(port: int) -> tuple[socket.socket | None, str | None]:
    """Listen on every interface, as tf.distribute.Server does."""
    try:
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=64), None
        return socket.create_server(("", port), backlog=64), None
    except OSError as err:
        return None, str(err)


def connect(address: str, deadline: float) -> str | None:
    host, port = address.rsplit(":", 1)
    error = "timed out"
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            return None
        except OSError as err:
            error = str(err)
            time.sleep(0.2)
    return error


def wait_for_peers(folder: str, job_id: str, tasks: int, deadline: float) -> None:
    """Keep listening until every task has finished connecting (or the deadline)."""
    paths = [os.path.join(folder, report_name(job_id, r)) for r in range(tasks)]
    while time.monotonic() < deadline:
        done = 0
        for path in paths:
            try:
                with open(path) as f:
                    done += json.load(f).get("phase") == PHASE_DONE
            except (OSError, ValueError):
                pass
        if done == tasks:
            return
        time.sleep(0.3)


def main(argv: list[str]) -> int:
    opts = parse(argv)
    # A rank stuck in MPI_Init or a connect must not hold the job until its time limit.
    faulthandler.dump_traceback_later(opts["timeout"], exit=True)
    folder = os.environ.get("HPCTF_LOG_DIR", ".")
    job_id = taskenv.job_id(os.environ, taskenv.OUTSIDE_A_JOB)
    info = identity()
    report = Report(folder, job_id, info["rank"])
    report.data.update(info, launcher=opts["launcher"])
    report.write(PHASE_STARTED)
    deadline = time.monotonic() + opts["timeout"] - 10

    server = None
    if opts["ports"] and info["tf_config"]:
        task = info["tf_config"]["task"]
        cluster = info["tf_config"]["cluster"]
        mine = cluster[task["type"]][task["index"]]
        server, error = listen(int(mine.rsplit(":", 1)[1]))
        report.data["ports"] = {"address": mine, "listen_error": error, "reached": {}}
        report.write(PHASE_STARTED)
    report.data["resolve"] = resolve(node_names())
    report.write(PHASE_STARTED)
    if opts["ports"] and info["tf_config"]:
        peers = [a for addresses in cluster.values() for a in addresses if a != mine]
        report.data["ports"]["reached"] = {peer: connect(peer, min(deadline, time.monotonic() + 60)) for peer in peers}
        report.write(PHASE_STARTED)
    if opts["env"] and info["local_rank"] == 0:
        report.data["env"] = environment_check(opts["horovod"], opts["gpus"])
        report.write(PHASE_STARTED)
    if opts["mpi"]:
        report.write(PHASE_MPI)
        try:
            report.data["mpi"] = mpi_check(opts["tasks"])
        except Exception as err:  # noqa: BLE001
            report.data["mpi"] = {"error": f"{type(err).__name__}: {err}"}
    if opts["keras"]:
        report.write(PHASE_KERAS)  # left as the phase if importing TensorFlow kills the rank
        report.data["horovod_keras"] = horovod_keras_check()
    report.write(PHASE_DONE)
    if server is not None:
        wait_for_peers(folder, job_id, opts["tasks"], deadline)
        server.close()
    print(f"hpctf doctor: rank {info['rank']} on {info['host']} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
