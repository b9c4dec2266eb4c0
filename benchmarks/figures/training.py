"""Figure 6: training throughput when hpctf starts the job vs a hand-written script.

Two allocations, one after the other (never both at once: the test cluster's "nodes"
share this machine's cores). In each, ``probes/training.py`` runs every variant once per
round, in rotating order (as ``measure.interleave`` does):

* 2 nodes x 2 processes, the Horovod example (``examples/horovod/train.py``):
  hpctf's rendered script for ``--backend mpi --launcher mpirun``, run with ``bash``
  inside the allocation as sbatch would run it (``mpirun -np 4 -bind-to none -map-by slot
  ... python -m hpctf.runtime --task-logs ... -- python train.py``), against the
  hand-written line ``mpirun -np 4 -bind-to none -map-by slot python train.py``; and
  hpctf's script for the default launcher (``srun --mpi=pmix ... python -m hpctf.runtime
  -- python train.py``) against ``srun --mpi=pmix python train.py``.
* 3 nodes, 4 tasks, the parameter-server example (chief + 1 ps + 2 workers): hpctf's
  rendered script (``python -m hpctf.runtime --ps 1 --workers 2 --chief --port-base P
  --done-dir D``) against a hand-written script that writes TF_CONFIG for each task in
  ``srun --ntasks=4 bash -c '...'`` and kills the servers once the chief is done.  Every
  run listens on its own ports, so no run waits on another's sockets in TIME_WAIT.

The figure is the rate the example itself prints (``samples/s=``: rank 0 over epochs
2..N, the chief over its steps), so it leaves start-up out (figure 3 measures that); the
ratio is hpctf ÷ hand-written, higher is better.  Each launch's wall time, start-up and
shut-down included, is shown too, without a goal.  Before the rounds, one task imports
TensorFlow once, unmeasured, so the first run does not pay for a cold page cache.

Where the 4 training processes outnumber this machine's cores (the test cluster's nodes
all run here), both sides run with ``OMPI_MCA_mpi_yield_when_idle=1`` and one TensorFlow
thread per pool (``TF_NUM_INTRAOP_THREADS=1``, ``TF_NUM_INTEROP_THREADS=1``): spinning
threads, more of them than cores, made identical Horovod runs differ far more than any
launcher could (tried while this figure was written, 2 cores: 546 to 2,727 samples/s
with the defaults; 4,921 to 11,874 with yielding alone; 7,166 to 8,597 with both).
Open MPI yields by itself when it knows it is oversubscribed; here it cannot know.

``--quick`` runs ``probes/standin_train.py`` instead of the examples: the same launchers,
scripts, TF_CONFIG and server shutdown in seconds, without TensorFlow (four TensorFlow
processes take about 30 s to start on a small machine).  Its rates are not training.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..lab import REPO, Context, job_id, wait_for_job
from ..measure import BenchError, Figure, Stats, ratio_at_least, run

NUMBER = 6
NAME = "training"
TITLE = "Training throughput under hpctf vs a hand-written script"
NEEDS_SLURM = True

GOAL = 0.98
HOROVOD = ("mpirun.hpctf", "mpirun.bare", "srun.hpctf", "srun.bare")
PS = ("ps.hpctf", "ps.bare")
STANDIN = REPO / "benchmarks" / "probes" / "standin_train.py"
EXAMPLES = REPO / "examples"


@dataclass(frozen=True)
class Size:
    rounds: int
    epochs: int  # Horovod example
    steps: int  # parameter-server example
    run_timeout_s: int
    job_minutes: int


FULL = Size(rounds=3, epochs=20, steps=400, run_timeout_s=300, job_minutes=30)
QUICK = Size(rounds=1, epochs=2, steps=20, run_timeout_s=60, job_minutes=5)

# Set for both sides where the processes outnumber the cores (see the module's docstring).
CALM = {"OMPI_MCA_mpi_yield_when_idle": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
TRAINING_PROCESSES = 4

JOB = """#!/bin/bash
#SBATCH --job-name=hpctf-bench-training
{directives}
#SBATCH --time={minutes}
#SBATCH --output={log}
{exports}exec {python} -m benchmarks.probes.training --plan {plan} --out {out}
"""

# The hand-written alternative to hpctf's ps script, as a user would write it for this one
# layout. @NAME@ fields are filled in per run; the python path and source folder are quoted.
HAND_PS = (
    r"""#!/bin/bash
# The parameter-server example started by hand: a chief, 1 ps and 2 workers on 3 nodes,
# TF_CONFIG written out for each task. ps and workers never return on their own: each is
# killed once the chief has left its marker.
set -euo pipefail
export PYTHON=@PYTHON@
PORT=@PORT@
DONE=$(mktemp -d @RUN_DIR@/done-XXXXXX)
mapfile -t host < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
# srun places 4 tasks on 3 nodes in blocks: tasks 0 and 1 on the first node.
CLUSTER="{\"chief\":[\"${host[0]}:$PORT\"],\"ps\":[\"${host[0]}:$((PORT + 1))\"],"""
    # (one line of the script, split in two here for the line length)
    r"""\"worker\":[\"${host[1]}:$((PORT + 2))\",\"${host[2]}:$((PORT + 3))\"]}"
export CLUSTER DONE
cd @SRC@
srun --ntasks=4 bash -c '
case $SLURM_PROCID in
    0) role=chief index=0 ;;
    1) role=ps index=0 ;;
    2) role=worker index=0 ;;
    *) role=worker index=1 ;;
esac
export TF_CONFIG="{\"cluster\":$CLUSTER,\"task\":{\"type\":\"$role\",\"index\":$index}}"
if [ "$role" = chief ]; then
    "$PYTHON" train.py @ARGS@; code=$?
    touch "$DONE/chief"
    exit "$code"
fi
"$PYTHON" train.py @ARGS@ & pid=$!
until [ -e "$DONE/chief" ]; do sleep 0.2; done
kill "$pid"; wait "$pid" || true
'
"""
)


def rotation(names: tuple[str, ...], rounds: int) -> list[tuple[int, str]]:
    """(round, variant) in run order: every variant once per round, the order rotating."""
    order = []
    for i in range(rounds):
        shift = i % len(names)
        order += [(i, name) for name in names[shift:] + names[:shift]]
    return order


def oversubscribed() -> bool:
    """Whether the training processes outnumber this machine's cores (the test cluster's
    nodes all run here); both sides then run with ``CALM``."""
    return (os.cpu_count() or 1) < TRAINING_PROCESSES


MCA_PARAMS = Path("/etc/openmpi/openmpi-mca-params.conf")


def mca_flag_note() -> str:
    """Where hpctf's ``mpirun -mca NAME VALUE`` replaces this machine's Open MPI default."""
    from hpctf.render import MPIRUN_FLAGS

    try:
        lines = MCA_PARAMS.read_text().splitlines()
    except OSError:
        return ""
    site = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            site[name.strip()] = value.strip()
    flags = list(MPIRUN_FLAGS)
    ours = {flags[i + 1]: flags[i + 2] for i, word in enumerate(flags[:-2]) if word == "-mca"}
    replaced = [f"`{name} = {site[name]}`" for name, value in ours.items() if name in site and site[name] != value]
    return f"; it replaces this machine's Open MPI default {', '.join(replaced)} ({MCA_PARAMS})" if replaced else ""


def missing_stack(ctx: Context) -> list[str]:
    code = (
        "import importlib.util as u; "
        "print(' '.join(m for m in ('tensorflow', 'horovod', 'sklearn') if u.find_spec(m) is None))"
    )
    return run([ctx.python, "-c", code], ctx.env())[1].stdout.split()


def source(ctx: Context, name: str, example: str) -> Path:
    """A folder with ``train.py``: the example's, or the stand-in in quick mode."""
    src = ctx.folder("training", f"src-{name}")
    shutil.copy(STANDIN if ctx.quick else EXAMPLES / example / "train.py", src / "train.py")
    return src


def hpctf_run(spec, run_dir: Path) -> tuple[list[str], str]:
    """hpctf's rendered script for ``spec`` (per-run log folder); (command, rank-0 log glob)."""
    from hpctf.render import JobPaths, render_script

    logs = run_dir / "logs"
    logs.mkdir()
    script = run_dir / "job.sbatch"
    script.write_text(render_script(spec, JobPaths(workdir=Path(spec.source_directory), log_dir=logs)))
    return ["bash", str(script)], str(logs / "*_0_log.out")


def horovod_runs(ctx: Context, size: Size) -> list[dict]:
    import hpctf

    src, py = source(ctx, "horovod", "horovod"), ctx.python
    runs = []
    for rnd, variant in rotation(HOROVOD, size.rounds):
        run_dir = ctx.folder("training", "horovod", f"{variant}-{rnd}")
        params = {"--epochs": size.epochs, "--checkpoint-dir": str(run_dir / "checkpoints")}
        launcher, how = variant.split(".")
        if how == "hpctf":
            spec = hpctf.TensorFlow(
                source_directory=src,
                entry_script="train.py",
                script_params=params,
                python=py,
                distributed_backend="mpi",
                node_count=2,
                process_count_per_node=2,
                launcher=launcher,
            )
            cmd, samples_from = hpctf_run(spec, run_dir)
        else:
            args = [py, "train.py", *(str(w) for kv in params.items() for w in kv)]
            front = (
                ["mpirun", "-np", "4", "-bind-to", "none", "-map-by", "slot"]
                if launcher == "mpirun"
                else ["srun", "--mpi=pmix"]
            )
            cmd, samples_from = [*front, *args], None
        runs.append(
            {
                "variant": variant,
                "round": rnd,
                "cmd": cmd,
                "cwd": str(src),
                "log": str(run_dir / "launch.log"),
                "samples_from": samples_from,
            }
        )
    return runs


def ps_runs(ctx: Context, size: Size) -> list[dict]:
    import hpctf

    src, py = source(ctx, "ps", "parameter_server"), ctx.python
    port = 20000 + 100 * random.randrange(100)  # a fresh range per suite run, then +10 per run
    runs = []
    for rnd, variant in rotation(PS, size.rounds):
        run_dir = ctx.folder("training", "ps", f"{variant}-{rnd}")
        port += 10
        if variant == "ps.hpctf":
            spec = hpctf.TensorFlow(
                source_directory=src,
                entry_script="train.py",
                script_params={"--steps": size.steps},
                python=py,
                distributed_backend="ps",
                node_count=3,
                parameter_server_count=1,
                worker_count=2,
                chief=True,
                port_base=port,
            )
            cmd, samples_from = hpctf_run(spec, run_dir)
        else:
            script = run_dir / "hand.sh"
            fields = {
                "@PYTHON@": shlex.quote(py),
                "@PORT@": str(port),
                "@RUN_DIR@": shlex.quote(str(run_dir)),
                "@SRC@": shlex.quote(str(src)),
                "@ARGS@": f"--steps {size.steps}",
            }
            text = HAND_PS
            for key, value in fields.items():
                text = text.replace(key, value)
            script.write_text(text)
            cmd, samples_from = ["bash", str(script)], None
        runs.append(
            {
                "variant": variant,
                "round": rnd,
                "cmd": cmd,
                "cwd": str(src),
                "log": str(run_dir / "launch.log"),
                "samples_from": samples_from,
                "port_base": port,
            }
        )
    return runs


def in_allocation(ctx: Context, name: str, directives: list[str], runs: list[dict], imports: str) -> dict:
    """One sbatch job that runs ``runs`` through probes/training.py; its results."""
    size = QUICK if ctx.quick else FULL
    folder = ctx.folder("training", f"job-{name}")
    plan, out, log = folder / "plan.json", folder / "out.json", folder / "job.log"
    py = ctx.python
    warm = ["srun", "--ntasks=1", py, "-m", "hpctf.runtime", "--", py, "-c", "pass" if ctx.quick else imports]
    plan.write_text(
        json.dumps(
            {
                "warmup": {"cmd": warm, "cwd": str(folder), "log": str(folder / "warmup.log")},
                "runs": runs,
                "timeout_s": size.run_timeout_s,
            },
            indent=1,
        )
    )
    script = folder / "job.sbatch"
    exports = "".join(f"export {k}={v}\n" for k, v in CALM.items()) if oversubscribed() else ""
    script.write_text(
        JOB.format(
            directives="\n".join(f"#SBATCH {d}" for d in directives),
            minutes=size.job_minutes,
            log=log,
            exports=exports,
            python=py,
            plan=plan,
            out=out,
        )
    )
    _, done = run(["sbatch", "--parsable", f"--chdir={REPO}", str(script)], ctx.env())
    job = ctx.track(job_id(done.stdout))
    # Poll rarely: squeue competes with the training for this machine's CPUs.
    timeout = 60 + len(runs) * size.run_timeout_s
    state = wait_for_job(ctx, job, timeout=timeout, poll=0.5 if ctx.quick else 3)
    if not out.exists():
        text = log.read_text() if log.exists() else "(no log)"
        raise BenchError(f"training job {job} ({name}) ended {state} without results:\n{text[-2000:]}")
    result = json.loads(out.read_text())
    if result["error"] or len(result["runs"]) != len(runs):
        raise BenchError(f"training job {job} ({name}) ended {state}: {result['error'] or 'runs missing'}")
    result["order"] = [f"{r['variant']}#{r['round']}" for r in runs]
    return result


def pair(result: dict, name: str, key: str) -> tuple[list[float], list[float]]:
    """hpctf's samples and the hand-written ones, round by round."""
    by = {(r["variant"], r["round"]): r[key] for r in result["runs"]}
    rounds = sorted({r["round"] for r in result["runs"]})
    ours = [by[(f"{name}.hpctf", i)] for i in rounds]
    theirs = [by[(f"{name}.bare", i)] for i in rounds]
    return ours, theirs


def measure(ctx: Context) -> list[Figure]:
    size = QUICK if ctx.quick else FULL
    if not ctx.quick:
        missing = missing_stack(ctx)
        if missing:
            raise BenchError(f"training stack not installed ({', '.join(missing)}): run scripts/install-tf-stack")
    horovod = in_allocation(
        ctx,
        "horovod",
        ["--nodes=2", "--ntasks-per-node=2"],
        horovod_runs(ctx, size),
        "import tensorflow, horovod.tensorflow, sklearn.model_selection",
    )
    ps = in_allocation(
        ctx, "ps", ["--nodes=3", "--ntasks=4"], ps_runs(ctx, size), "import tensorflow, sklearn.model_selection"
    )

    quick = "quick mode: a stand-in train.py without TensorFlow, the rate is not training; " if ctx.quick else ""
    cores = (
        f"both sides with {' '.join(f'{k}={v}' for k, v in CALM.items())} "
        f"({TRAINING_PROCESSES} processes, {os.cpu_count()} cores on this machine); "
        if oversubscribed()
        else ""
    )
    hvd_what = f"Horovod example (`train.py --epochs {size.epochs}`), 2 nodes × 2 processes"
    ps_what = f"parameter-server example (`train.py --steps {size.steps}`), chief + 1 ps + 2 workers on 3 nodes"
    variants = [
        (
            "mpirun",
            horovod,
            f"{hvd_what}, rank 0's samples/s: hpctf's script, "
            "`mpirun -np 4 -bind-to none -map-by slot -mca pml ob1 -mca btl ^openib -x … "
            "python -m hpctf.runtime --task-logs … -- python train.py`",
            "hand-written `mpirun -np 4 -bind-to none -map-by slot python train.py`",
            "hpctf's line also passes `-mca pml ob1 -mca btl ^openib` (Horovod's recommended flags)"
            + mca_flag_note()
            + "; and `-x` exports; rank 0 writes to its own log file",
        ),
        (
            "srun",
            horovod,
            f"{hvd_what}, rank 0's samples/s: hpctf's script, default launcher "
            "`srun --mpi=pmix --ntasks=4 --distribution=block --kill-on-bad-exit=1 --output=… "
            "python -m hpctf.runtime -- python train.py`",
            "bare `srun --mpi=pmix python train.py`",
            "hpctf's tasks write to per-task log files (`--output`), the bare step's output goes through srun",
        ),
        (
            "ps",
            ps,
            f"{ps_what}, the chief's samples/s: hpctf's script, "
            "`srun --ntasks=4 … python -m hpctf.runtime --ps 1 --workers 2 --chief --port-base P --done-dir D "
            "-- python train.py`",
            (
                "hand-written script: TF_CONFIG per `$SLURM_PROCID` in `srun --ntasks=4 bash -c …`, "
                "ps/workers killed after the chief"
            ),
            (
                "every run on its own ports; servers stopped after the chief: by hpctf.runtime's done markers, "
                "by hand with a marker file"
            ),
        ),
    ]
    figures = []
    for name, result, what, baseline, detail in variants:
        rates, base_rates = pair(result, name, "samples_per_s")
        walls, base_walls = pair(result, name, "wall_s")
        order = [o for o in result["order"] if o.startswith(f"{name}.")]
        figures += [
            Figure(
                f"training.{name}",
                what,
                "samples/s",
                rates,
                baseline=f"{baseline}, same allocation",
                baseline_samples=base_rates,
                paired=True,
                goal=ratio_at_least(GOAL),
                note=(
                    f"{quick}rate printed by the example itself, start-up left out; ratio = hpctf ÷ hand-written, "
                    f"higher is better; {detail}; {cores}runs alternate in one allocation ({result['nodelist']}), "
                    f"order {', '.join(order)}"
                ),
                extra={
                    "runs": [r for r in result["runs"] if r["variant"].startswith(f"{name}.")],
                    "warmup_s": result["warmup_s"],
                    "environment": CALM if oversubscribed() else {},
                },
            ),
            Figure(
                f"training.{name}.wall",
                f"the same launches, wall time ({name}): start-up, training, evaluation, shut-down",
                "s",
                walls,
                baseline=baseline,
                baseline_samples=base_walls,
                paired=True,
                note=f"{quick}hpctf {_median(walls):.1f} s vs hand-written {_median(base_walls):.1f} s per launch",
            ),
        ]
    return figures


def _median(xs: list[float]) -> float:
    return Stats.of(xs).median
