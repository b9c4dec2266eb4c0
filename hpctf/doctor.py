"""``hpctf doctor``: a preflight job of the requested shape that checks what breaks
distributed training on a new cluster, and a report that says what to change.

The doctor job is an ordinary hpctf job: its entry script is :mod:`hpctf.probe`, copied
into a source folder of its own, and it goes through :func:`hpctf.submission.plan` and
:func:`~hpctf.submission.schedule` like any submit, so it runs exactly the script (and
launcher, bootstrap, GPU binding, ``TF_CONFIG``) a real job of that shape would. Every
rank leaves a JSON report in the run's log folder; :func:`evaluate` judges them.

Checks: ``sbatch --test-only`` of the doctor's own script; the job ends cleanly; every
rank starts, on the expected nodes; an MPI allreduce across all ranks (``mpi`` backend:
with the job's launcher, and also with the other one, whose failure only warns); GPU
visibility per rank (``CUDA_VISIBLE_DEVICES``); every node name resolves from every rank;
``ps`` backend: every task listens on its ``TF_CONFIG`` port and reaches every other
task's; TensorFlow (and Horovod for ``mpi``) import on every node, same versions.

This process never imports TensorFlow, Horovod or mpi4py: the probe does, on the nodes.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import HpctfError

PROBE_NAME = "hpctf_doctor_probe.py"
DEFAULT_TIME = "10"  # minutes: a short limit schedules sooner (backfill); the probe needs ~1
PROBE_TIMEOUT_S = 150  # a rank stuck in MPI_Init or a connect gives up after this
PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
NOT_STARTED = "not checked: no rank got this far (see 'ranks start')"


@dataclass
class Check:
    name: str
    status: str
    summary: str
    advice: str | None = None
    details: list[str] = field(default_factory=list)


@dataclass
class Shape:
    """What the doctor expects of the job, from the spec that runs (target applied)."""

    backend: str  # "single" | "mpi" | "ps"
    tasks: int
    nodes: int
    tasks_per_node: list[int]
    gpus: int  # per node
    launcher: str  # "srun" | "mpirun"
    pmi: str
    python: str
    roles: list[tuple[str, int]] = field(default_factory=list)  # ps: (type, index) by task id
    port_base: int | None = None  # None: the job's own range, from its job id
    description: str = ""
    keras: str = "auto"  # the spec's Keras policy (hpctf.keras_policy)

    @classmethod
    def from_spec(cls, spec: Any, python: str) -> Shape:
        roles: list[tuple[str, int]] = []
        if spec.distributed_backend == "ps":
            from .runtime import cluster_roles

            roles = cluster_roles(spec.parameter_server_count, spec.worker_count, spec.chief)
        launcher = spec.mpi_launcher if spec.distributed_backend == "mpi" else "srun"
        return cls(
            backend=spec.backend,
            tasks=spec.task_count,
            nodes=spec.node_count,
            tasks_per_node=spec.tasks_on_node(),
            gpus=spec.gpus,
            launcher=launcher,
            pmi=spec.pmi_plugin,
            python=python,
            roles=roles,
            port_base=spec.port_base,
            description=describe(spec),
            keras=spec.keras,
        )

    def launch_name(self, launcher: str | None = None) -> str:
        launcher = launcher or self.launcher
        return f"srun --mpi={self.pmi}" if launcher == "srun" and self.backend == "mpi" else launcher


def describe(spec: Any) -> str:
    from .submission import shape_of

    return f"{spec.backend} {shape_of(spec)}"


@dataclass
class JobResult:
    """One doctor job after it ended (or was given up on)."""

    launcher: str
    job_id: str | None = None
    run_dir: str | None = None
    state: str = "NOT SUBMITTED"
    exit_code: int | None = None
    timed_out: bool = False
    reports: dict[int, dict] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # log file name -> its last lines
    error: str | None = None  # why it could not be submitted

    @property
    def log_text(self) -> str:
        return "\n".join(self.logs.values())


# ---------------------------------------------------------------------------------------
# Judging: pure functions of the shape and what the ranks wrote.
# ---------------------------------------------------------------------------------------


def evaluate(
    shape: Shape, test_only: Check, primary: JobResult, other: JobResult | None = None, mpi_list: str | None = None
) -> list[Check]:
    """Every check, in the report's order."""
    if primary.job_id is None and test_only.status == FAIL:
        names = ["doctor job", "ranks start", "GPU visibility", "hostnames", "Python environment", "Keras"]
        return [test_only] + [Check(n, SKIP, "not run: sbatch --test-only refused the script") for n in names]
    checks = [test_only, job_check(shape, primary), ranks_check(shape, primary)]
    if shape.backend == "mpi":
        checks.append(mpi_check(shape, primary, other, mpi_list))
        if other is not None:
            checks.append(mpi_check(shape, other, primary, mpi_list, secondary=True))
    checks += [gpu_check(shape, primary), hostname_check(shape, primary)]
    if shape.backend == "ps":
        checks.append(ports_check(shape, primary))
    checks += [environment_check(shape, primary), keras_check(shape, primary)]
    return checks


UNKNOWN_PLUGIN = re.compile(
    r"Invalid MPI type|Couldn't find the specified plugin name for mpi|cannot find mpi plugin", re.I
)


def log_hints(shape: Shape, text: str) -> list[str]:
    """What a job's logs say went wrong, as things to change."""
    hints: list[str] = []
    if re.search(r"No module named '?hpctf", text):
        hints.append(
            f"the job's Python ({shape.python}) cannot import hpctf, and every task starts through "
            "`python -m hpctf.runtime`: `pip install hpctf` into that environment, or pass --python "
            "with one that has it"
        )
    if UNKNOWN_PLUGIN.search(text):
        hints.append(f"srun has no MPI plugin '{shape.pmi}': pass --pmi with one `srun --mpi=list` shows")
    if re.search(r"mpirun: (command )?not found|mpirun: No such file", text):
        hints.append(
            "mpirun is not on PATH in the job: load Open MPI in the job (--setup 'module load openmpi' "
            "or the target's modules), or use --launcher srun"
        )
    python = re.escape(shape.python)
    if re.search(
        rf"{python}: (No such file or directory|command not found)|execve\(\): {python}|cannot run '?{python}", text
    ):
        hints.append(
            f"--python {shape.python} does not exist on the compute nodes: pass an interpreter on a "
            "file system they mount"
        )
    if re.search(r"PMIX_ERROR|PMIx_Init|pmix.*(failed|error)|OPAL ERROR", text, re.I):
        hints.append(
            "Open MPI could not reach Slurm's PMIx (Open MPI built without PMIx, or a PMIx version "
            "mismatch): ask your admin which --pmi to use (`srun --mpi=list`), or use --launcher mpirun"
        )
    if "Address already in use" in text:
        hints.append("a port is taken: choose another --port-base")
    for line in text.splitlines():
        if line.startswith("hpctf.runtime:") and line not in hints:
            hints.append(line)
    return hints


def first_of(problems: list[str]) -> str:
    """A failed check's one-line summary: its first problem, and how many more."""
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def _tail(result: JobResult, lines: int = 8) -> list[str]:
    out: list[str] = []
    for name, text in result.logs.items():
        body = [line for line in text.strip().splitlines() if line.strip()][-lines:]
        if body:
            out.append(f"{name}:")
            out += [f"  {line}" for line in body]
    return out


def _missing_summary(result: JobResult) -> str:
    if result.error:
        return result.error
    if result.timed_out:
        return f"job {result.job_id} did not finish in time (state {result.state})"
    return f"job {result.job_id} ended {result.state} (exit code {result.exit_code})"


def job_check(shape: Shape, result: JobResult) -> Check:
    name = "doctor job"
    if result.error:
        return Check(name, FAIL, result.error, advice="fix what sbatch says, then rerun hpctf doctor")
    if result.timed_out:
        if result.reports or result.logs:
            summary = f"job {result.job_id} was still running when --timeout ran out (cancelled)"
            advice = (
                "see which ranks did not finish below; a rank stuck in MPI_Init or a connect gives up "
                f"after {PROBE_TIMEOUT_S} s, so a --timeout above that tells a hang from a slow start"
            )
        else:
            summary = f"job {result.job_id} was still {result.state} when --timeout ran out (cancelled)"
            advice = (
                f"it waited in the queue: `squeue -j {result.job_id} -o %R` gives the reason; a smaller shape "
                "or another --partition starts sooner, or give it longer with --timeout"
            )
        return Check(name, FAIL, summary, advice=advice, details=_tail(result))
    if result.state == "COMPLETED" and result.exit_code == 0:
        return Check(name, PASS, f"job {result.job_id} COMPLETED (exit code 0)")
    if len(result.reports) < shape.tasks:  # why is for 'ranks start' to say
        return Check(name, FAIL, _missing_summary(result))
    hints = log_hints(shape, result.log_text)
    return Check(
        name,
        FAIL,
        _missing_summary(result),
        advice="; ".join(hints) or f"read the logs in {result.run_dir}/logs",
        details=_tail(result),
    )


def _launcher_id(report: dict) -> str | None:
    return report.get("ompi_rank") if report.get("ompi_rank") is not None else report.get("slurm_procid")


def ranks_check(shape: Shape, result: JobResult) -> Check:
    name = "ranks start"
    reports = result.reports
    missing = [r for r in range(shape.tasks) if r not in reports]
    problems: list[str] = []
    for rank, report in sorted(reports.items()):
        launcher_id = _launcher_id(report)
        if launcher_id is not None and str(rank) != str(launcher_id):
            problems.append(f"rank {rank} on {report['host']}: HPCTF_RANK={rank} but the launcher says {launcher_id}")
        if report.get("world_size") != shape.tasks:
            problems.append(
                f"rank {rank} on {report['host']}: world size {report.get('world_size')}, expected {shape.tasks}"
            )
    per_host: dict[str, int] = {}
    for report in reports.values():
        per_host[report["host"]] = per_host.get(report["host"], 0) + 1
    hosts = ", ".join(f"{h} ({n})" for h, n in sorted(per_host.items()))
    if missing:
        hints = log_hints(shape, result.log_text)
        if not reports:
            summary = f"no rank of {shape.tasks} started ({_missing_summary(result)})"
        else:
            summary = (
                f"{len(reports)}/{shape.tasks} ranks reported (from {hosts}); missing: {', '.join(map(str, missing))}"
            )
        return Check(
            name,
            FAIL,
            summary,
            advice="; ".join(hints) or f"read the missing ranks' logs in {result.run_dir}/logs",
            details=_tail(result),
        )
    if sorted(per_host.values()) != sorted(shape.tasks_per_node):
        problems.append(f"ranks per node {sorted(per_host.values())}, expected {sorted(shape.tasks_per_node)}")
    if problems:
        return Check(
            name,
            FAIL,
            f"{shape.tasks}/{shape.tasks} ranks reported, but the layout is wrong",
            details=problems,
            advice="the launcher numbers or places ranks differently from Slurm's block distribution: "
            "check SLURM_DISTRIBUTION / a site srun wrapper, or try the other --launcher",
        )
    return Check(name, PASS, f"{shape.tasks}/{shape.tasks} ranks reported from {len(per_host)} node(s): {hosts}")


def mpi_check(
    shape: Shape, result: JobResult, other: JobResult | None, mpi_list: str | None, secondary: bool = False
) -> Check:
    how = shape.launch_name(result.launcher)
    name = f"MPI allreduce ({how})"
    expected_sum = shape.tasks * (shape.tasks - 1) // 2
    failed_status = WARN if secondary else FAIL
    other_ok = other is not None and _mpi_ok(shape, other)
    other_how = shape.launch_name(other.launcher) if other is not None else None

    def advice() -> str:
        hints = log_hints(shape, result.log_text)
        offered = f": {mpi_list}" if mpi_list else ""
        missing = missing_modules(result)
        if missing:
            # Nothing was tried over MPI: the ranks had nothing to try it with.
            text = (
                f"the job's Python ({shape.python}) has no {' and no '.join(missing)}, so no rank could "
                "run MPI: install mpi4py (pip install mpi4py) and Horovod built against its TensorFlow "
                "(scripts/install-tf-stack) into that environment, or pass --python with one that has them"
            )
        elif result.launcher == "srun" and UNKNOWN_PLUGIN.search(result.log_text):
            text = (
                f"srun --mpi={shape.pmi} failed: this srun has no '{shape.pmi}' MPI plugin "
                f"(`srun --mpi=list`{offered}): pass --pmi with one of those, or use --launcher mpirun"
            )
            hints = [h for h in hints if not h.startswith("srun has no MPI plugin")]
        elif result.launcher == "srun":
            text = (
                f"srun --mpi={shape.pmi} failed: ask your admin whether PMIx is built in "
                f"(`srun --mpi=list`{offered}), try another --pmi, or use --launcher mpirun"
            )
        else:
            text = (
                "mpirun failed: is Open MPI's mpirun on PATH in the job (load its module: --setup "
                "'module load openmpi'), and built with Slurm support (`ompi_info | grep slurm`)? "
                "Or use --launcher srun"
            )
        if result.timed_out:
            text = (
                "the doctor stopped waiting (--timeout) before the ranks finished; "
                f"if they hang there every time: {text}"
            )
        if other_ok:
            text += f" ({other_how} works here)"
        elif other is not None:
            text += f" ({other_how} failed too: see its check)"
        return "; ".join([text, *hints])

    note = " (not the job's launcher: a failure here only warns)" if secondary else ""
    results = {r: rep.get("mpi") for r, rep in result.reports.items()}
    if not result.reports:
        return Check(
            name,
            failed_status,
            f"no rank started ({_missing_summary(result)}){note}",
            advice=advice(),
            details=_tail(result) if secondary else [],
        )
    problems: list[str] = []
    from .probe import PHASE_MPI

    stuck = [r for r, rep in result.reports.items() if rep.get("phase") == PHASE_MPI]
    if stuck:
        problems.append(
            f"ranks {', '.join(map(str, sorted(stuck)))} never finished MPI_Init/allreduce (hung or crashed)"
        )
    for rank, mpi in sorted(results.items()):
        if mpi is None:
            if rank not in stuck:
                problems.append(f"rank {rank}: no MPI result")
        elif mpi.get("error"):
            problems.append(f"rank {rank}: {mpi['error']}")
        elif mpi.get("size") != shape.tasks or mpi.get("sum") != expected_sum:
            problems.append(
                f"rank {rank}: MPI size {mpi.get('size')} (expected {shape.tasks}), "
                f"allreduce sum {mpi.get('sum')} (expected {expected_sum})"
            )
    missing = [r for r in range(shape.tasks) if r not in result.reports]
    if missing:
        problems.append(f"ranks {', '.join(map(str, missing))} did not start")
    if problems:
        sizes = {m.get("size") for m in results.values() if m and not m.get("error")}
        text = advice()
        if sizes == {1} and shape.tasks > 1 and not missing_modules(result):
            text = (
                f"every rank initialised MPI on its own (size 1): {how} does not wire Open MPI's ranks "
                f"together; pass --pmi with a PMIx plugin from `srun --mpi=list`"
                f"{' (' + mpi_list + ')' if mpi_list else ''}, or use --launcher mpirun"
            )
        return Check(name, failed_status, first_of(problems) + note, advice=text, details=problems + _tail(result, 4))
    library = next((m.get("library") for m in results.values() if m and m.get("library")), None)
    via = next((m.get("via") for m in results.values() if m), "mpi4py")
    lib = f"; {library}" if library else ""
    return Check(name, PASS, f"{shape.tasks} ranks, size {shape.tasks}, sum {expected_sum} (via {via}{lib}){note}")


def missing_modules(result: JobResult) -> list[str]:
    """Modules whose absence stopped every rank's MPI check ('mpi4py', 'horovod'), or []."""
    errors = [(rep.get("mpi") or {}).get("error") or "" for rep in result.reports.values()]
    if not errors or not all("No module named" in e for e in errors):
        return []
    return sorted({name.split(".")[0] for e in errors for name in re.findall(r"No module named '([\w.]+)'", e)})


def _mpi_ok(shape: Shape, result: JobResult) -> bool:
    expected_sum = shape.tasks * (shape.tasks - 1) // 2
    return len(result.reports) == shape.tasks and all(
        (rep.get("mpi") or {}).get("size") == shape.tasks and (rep.get("mpi") or {}).get("sum") == expected_sum
        for rep in result.reports.values()
    )


def _role(shape: Shape, rank: int) -> str | None:
    return shape.roles[rank][0] if shape.backend == "ps" and rank < len(shape.roles) else None


def gpu_check(shape: Shape, result: JobResult) -> Check:
    name = "GPU visibility"
    if not shape.gpus:
        return Check(name, SKIP, "no GPUs requested")
    if not result.reports:
        return Check(name, SKIP, NOT_STARTED)
    problems: list[str] = []
    by_host: dict[str, dict[str, list[int]]] = {}
    for rank, rep in sorted(result.reports.items()):
        value = rep.get("cuda_visible_devices")
        devices = [d for d in (value or "").split(",") if d.strip()]
        role = _role(shape, rank)
        if role == "ps":
            if devices:
                problems.append(
                    f"rank {rank} (ps) on {rep['host']} sees GPUs {value}: parameter servers should see none"
                )
            continue
        if not devices:
            problems.append(
                f"rank {rank} on {rep['host']}: CUDA_VISIBLE_DEVICES is {'unset' if value is None else 'empty'}"
            )
            continue
        wanted = shape.gpus if shape.backend == "single" else 1
        if len(devices) != wanted:
            problems.append(f"rank {rank} on {rep['host']}: sees {len(devices)} GPU(s) ({value}), expected {wanted}")
        for device in devices:
            by_host.setdefault(rep["host"], {}).setdefault(device, []).append(rank)
    for host, devices in sorted(by_host.items()):
        for device, ranks in sorted(devices.items()):
            if len(ranks) > 1:
                problems.append(f"{host}: ranks {', '.join(map(str, ranks))} share GPU {device}")
    envs = [rep["env"] for rep in result.reports.values() if rep.get("env")]
    tf_seen = sorted(
        {
            f"{rep['host']}: {rep['env']['tf_gpus']}"
            for rep in result.reports.values()
            if (rep.get("env") or {}).get("tf_gpus") is not None
        }
    )
    driver = any(rep.get("nvidia_driver") for rep in result.reports.values())
    if driver:
        note = f"; TensorFlow sees GPUs per node: {', '.join(tf_seen)}" if tf_seen else ""
    else:
        note = (
            "; no NVIDIA driver on the nodes (/proc/driver/nvidia is missing): the GPUs may be fake or "
            "absent, so only CUDA_VISIBLE_DEVICES was checked, no CUDA code ran"
        )
    if problems:
        unset = any("unset" in p or "empty" in p for p in problems)
        advice = (
            (
                "Slurm gave the ranks no GPUs: the partition's gres.conf may not declare them (ask your admin; "
                "check --gpu-type and `sinfo -o '%N %G'`)"
            )
            if unset
            else "request at least one GPU per GPU process on each node (--gpus-per-node >= --procs-per-node)"
        )
        return Check(name, FAIL, first_of(problems) + note, advice=advice, details=problems)
    status, advice = PASS, None
    if driver and envs and any(e.get("tf_gpus") == 0 for e in envs):
        status = WARN
        advice = (
            "TensorFlow sees no GPU although the node has an NVIDIA driver: a CPU build of TensorFlow "
            "(pip install tensorflow[and-cuda]) or CUDA libraries it cannot load"
        )
    gpu_ranks = sum(len(r) for d in by_host.values() for r in d.values())
    return Check(
        name,
        status,
        f"{gpu_ranks} GPU rank(s), each with its own CUDA_VISIBLE_DEVICES on its node{note}",
        advice=advice,
    )


def hostname_check(shape: Shape, result: JobResult) -> Check:
    name = "hostnames"
    reports = {r: rep for r, rep in result.reports.items() if rep.get("resolve")}
    if not reports:
        return Check(name, SKIP, NOT_STARTED)
    failures: list[str] = []
    seen: dict[str, dict[tuple, list[str]]] = {}
    for rank, rep in sorted(reports.items()):
        for node, answer in rep["resolve"].items():
            if answer.get("error"):
                failures.append(f"{node} does not resolve on {rep['host']} (rank {rank}): {answer['error']}")
            else:
                seen.setdefault(node, {}).setdefault(tuple(answer["addresses"]), []).append(rep["host"])
    names = sorted({n for rep in reports.values() for n in rep["resolve"]})
    if failures:
        return Check(
            name,
            FAIL,
            first_of(failures),
            details=failures,
            advice="ask your admin to make every node's name resolve on every node (DNS or /etc/hosts): "
            "TF_CONFIG and MPI address the nodes by these names",
        )
    differ = [
        f"{node}: " + "; ".join(f"{', '.join(a)} on {', '.join(sorted(set(h)))}" for a, h in answers.items())
        for node, answers in sorted(seen.items())
        if len(answers) > 1
    ]
    if differ:
        return Check(
            name,
            WARN,
            "some node names resolve to different addresses on different nodes",
            details=differ,
            advice="a node's /etc/hosts may map its own name to a loopback address (127.0.1.1): "
            "peers then cannot reach what it advertises; ask your admin",
        )
    return Check(name, PASS, f"{len(names)} node name(s) ({', '.join(names)}) resolve from all {len(reports)} rank(s)")


def ports_check(shape: Shape, result: JobResult) -> Check:
    name = "TF_CONFIG ports"
    reports = {r: rep for r, rep in result.reports.items() if rep.get("ports")}
    if not reports:
        return Check(name, SKIP, NOT_STARTED)
    problems, listen_failed = [], False
    pairs = 0
    for rank, rep in sorted(reports.items()):
        ports = rep["ports"]
        who = (
            f"{'/'.join(map(str, shape.roles[rank])) if rank < len(shape.roles) else rank} "
            f"(rank {rank}) on {rep['host']}"
        )
        if ports.get("listen_error"):
            listen_failed = True
            problems.append(f"{who} cannot listen on {ports['address']}: {ports['listen_error']}")
        for peer, error in sorted(ports.get("reached", {}).items()):
            pairs += 1
            if error:
                problems.append(f"{who} cannot reach {peer}: {error}")
    missing = [r for r in range(shape.tasks) if r not in reports]
    if missing:
        problems.append(f"tasks {', '.join(map(str, missing))} did not report (see 'ranks start')")
    if problems:
        first = shape.port_base if shape.port_base is not None else _first_port(reports)
        span = f"{first}-{first + shape.tasks - 1}"
        advice = (
            (f"another process holds a port on that node: choose another --port-base (the job uses {span})")
            if listen_failed
            else (
                f"a firewall between the nodes blocks ports {span}: ask your admin which range is "
                "open between compute nodes and pass it as --port-base"
            )
        )
        return Check(name, FAIL, first_of(problems), advice=advice, details=problems)
    return Check(
        name, PASS, f"{len(reports)} tasks listen on their TF_CONFIG ports; all {pairs} task-to-task connections work"
    )


def _first_port(reports: dict[int, dict]) -> int:
    """Task 0's port, from what the tasks reported (port_base None: chosen at run time)."""
    rank, rep = min(reports.items())
    return int(str(rep["ports"]["address"]).rsplit(":", 1)[1]) - rank


def environment_check(shape: Shape, result: JobResult) -> Check:
    name = "Python environment"
    envs = {rep["host"]: (rep["env"], rep) for rep in result.reports.values() if rep.get("env")}
    if not envs:
        return Check(name, SKIP, NOT_STARTED)
    horovod = shape.backend == "mpi"
    problems: list[str] = []
    advice: list[str] = []
    versions: dict[tuple, list[str]] = {}
    for host, (env, rep) in sorted(envs.items()):
        where = f"{rep.get('python')} on {host}"
        if env.get("error"):
            problems.append(f"{where}: {env['error']}")
            advice.append(
                "importing TensorFlow crashed the interpreter: a TensorFlow build for other CPUs "
                "(AVX) or a broken install; install it on (or for) these nodes"
            )
            continue
        if env.get("tensorflow_error"):
            problems.append(f"TensorFlow is not importable with {where}: {env['tensorflow_error']}")
            advice.append(
                "install TensorFlow into the job's Python (scripts/install-tf-stack VENV, then "
                "--python VENV/bin/python), or load the site's TensorFlow module (--setup 'module load ...')"
            )
            continue
        if horovod and env.get("horovod_error"):
            problems.append(f"Horovod is not importable with {where}: {env['horovod_error']}")
            advice.append(
                "install Horovod built against this TensorFlow into the job's Python (scripts/install-tf-stack)"
            )
        elif horovod and env.get("horovod_mpi") is False:
            problems.append(f"Horovod with {where} was built without MPI")
            advice.append("reinstall Horovod with HOROVOD_WITH_MPI=1 (Open MPI's mpicc on PATH while it builds)")
        key = (env.get("tensorflow"), env.get("horovod") if horovod else None, rep.get("python_version"))
        versions.setdefault(key, []).append(host)
    if len(versions) > 1:
        problems.append(
            "nodes differ: "
            + "; ".join(
                f"TF {k[0]}{', Horovod ' + k[1] if k[1] else ''}, Python {k[2]} on {', '.join(h)}"
                for k, h in versions.items()
            )
        )
        advice.append("use one environment on a file system every node mounts (--python)")
    expected_hosts = {rep["host"] for rep in result.reports.values()}
    unchecked = sorted(expected_hosts - set(envs))
    if unchecked:
        problems.append(f"not checked on {', '.join(unchecked)} (the import check did not finish there)")
    if problems:
        return Check(name, FAIL, first_of(problems), advice="; ".join(dict.fromkeys(advice)) or None, details=problems)
    (tf, hvd, py), hosts = next(iter(versions.items()))
    python = next(iter(envs.values()))[1].get("python")
    stack = f"TensorFlow {tf}" + (f", Horovod {hvd} (MPI)" if hvd else "")
    return Check(name, PASS, f"{stack} with {python} (Python {py}) on {', '.join(sorted(hosts))}")


def keras_check(shape: Shape, result: JobResult) -> Check:
    """Which Keras ``tf.keras`` is in the tasks (hpctf's Keras policy at work) and, for
    ``mpi``, whether a step of Keras ``fit`` through Horovod's Keras layer works."""
    from .keras_policy import LEGACY_BACKENDS, LEGACY_KERAS_ENV, runtime_mode

    name = "Keras"
    envs = {rep["host"]: rep["env"] for rep in result.reports.values() if rep.get("env")}
    seen = {env["keras"] for env in envs.values() if env.get("keras")}
    if not seen:
        return Check(
            name, SKIP, NOT_STARTED if not envs else "not checked: TensorFlow did not import (see 'Python environment')"
        )
    values = {env.get("legacy_keras_env") for env in envs.values()}
    mode = runtime_mode(shape.keras, shape.backend)
    policy = f"keras={shape.keras!r}" + ("" if mode else " (TensorFlow's default for one process)")
    policy += ", " + ", ".join(
        f"{LEGACY_KERAS_ENV}={v}" if v is not None else f"{LEGACY_KERAS_ENV} unset" for v in sorted(values, key=str)
    )
    summary = f"tf.keras is {', '.join(sorted(seen))} in the tasks ({policy})"
    problems: list[str] = []
    advice: list[str] = []
    if len(seen) > 1:
        where = "; ".join(f"{env.get('keras')} on {host}" for host, env in sorted(envs.items()))
        problems.append(f"nodes differ: {where}")
        advice.append("use one environment on a file system every node mounts (--python)")
    keras3 = all(k.startswith("keras ") for k in seen)
    if keras3 and shape.backend in LEGACY_BACKENDS and shape.keras == "auto" and values == {None}:
        tf_version = next(iter(envs.values())).get("tensorflow", "X.Y")
        problems.append(
            "tf-keras is not installed in the job's Python, so tf.keras is Keras 3: Horovod's Keras layer "
            "and Model.fit under ParameterServerStrategy or MultiWorkerMirroredStrategy fail with it"
        )
        advice.append(
            f"pip install --no-deps 'tf-keras~={'.'.join(tf_version.split('.')[:2])}.0' into the job's Python "
            "(scripts/install-tf-stack does), or write those scripts for Keras 3 and pass --keras 3"
        )
    detail = ""
    if shape.backend == "mpi" and shape.keras == "3":
        detail = "; Horovod's Keras layer not tried (it needs tf-keras, and keras='3' was asked for)"
    elif shape.backend == "mpi":
        layer = {rank: rep.get("horovod_keras") for rank, rep in result.reports.items()}
        from .probe import PHASE_KERAS

        died = sorted(r for r, rep in result.reports.items() if rep.get("phase") == PHASE_KERAS)
        errors = {r: v["error"] for r, v in layer.items() if v and v.get("error")}
        if died:
            problems.append(f"ranks {', '.join(map(str, died))} died or hung training through Horovod's Keras layer")
        for rank, error in sorted(errors.items()):
            problems.append(f"rank {rank}: Horovod's Keras layer: {error}")
        if errors or died:
            text = " ".join(errors.values())
            if "get_value" in text:
                advice.append(
                    "this Horovod takes its Keras backend from `import keras` (Keras 3), not from tf.keras: "
                    "reinstall it with hpctf's patch (scripts/install-tf-stack applies scripts/horovod-patches/)"
                )
            elif "experimental_run_tf_function" in text or keras3:
                advice.append(
                    "Horovod's Keras layer needs tf-keras (Keras 2): install tf-keras into the job's Python and "
                    "keep --keras auto (or legacy); code written for Keras 3 can use hvd.grouped_allreduce instead"
                )
            else:
                advice.append(f"read the ranks' logs in {result.run_dir}/logs")
        elif layer and all(v and "loss" in v for v in layer.values()):
            detail = (
                f"; Horovod's Keras layer trains on {len(layer)} ranks "
                "(DistributedOptimizer, broadcast, metric-average and warm-up callbacks)"
            )
    if problems:
        return Check(
            name,
            WARN,
            f"{summary}; {first_of(problems)}",
            advice="; ".join(dict.fromkeys(advice)) or None,
            details=problems,
        )
    return Check(name, PASS, summary + detail)


# ---------------------------------------------------------------------------------------
# Running the doctor job(s)
# ---------------------------------------------------------------------------------------


def probe_source() -> Path:
    return Path(__file__).with_name("probe.py")


@contextlib.contextmanager
def probe_folder() -> Iterator[str]:
    """A temporary source folder holding only the probe, as the doctor job's code."""
    with tempfile.TemporaryDirectory(prefix="hpctf-doctor-") as source:
        shutil.copy(probe_source(), Path(source) / PROBE_NAME)
        yield source


def probe_arguments(shape: Shape, launcher: str, full: bool) -> list[str]:
    """The probe's argv. ``full``: the job's own launch (all checks); else MPI only."""
    args = ["--tasks", str(shape.tasks), "--launcher", launcher, "--timeout", str(PROBE_TIMEOUT_S)]
    if shape.backend == "mpi":
        args.append("--mpi")
    if full:
        args.append("--env")
        if shape.backend == "mpi":
            args.append("--horovod")
            if shape.keras != "3":  # Horovod's Keras layer needs tf-keras: no use trying it
                args.append("--keras")
        if shape.backend == "ps":
            args.append("--ports")
        if shape.gpus:
            args.append("--gpus")
    return args


def sbatch_test_only(script: str) -> Check:
    name = "sbatch --test-only"
    try:
        done = subprocess.run(["sbatch", "--test-only"], input=script, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return Check(
            name, FAIL, "sbatch is not on PATH", advice="run hpctf doctor on a Slurm login node (or --target local)"
        )
    except subprocess.TimeoutExpired:
        return Check(name, FAIL, "sbatch did not answer in 60 s", advice="is slurmctld up? (`scontrol ping`)")
    text = (done.stderr.strip() or done.stdout.strip()).replace("sbatch: ", "")
    if done.returncode == 0:
        return Check(name, PASS, f"Slurm accepts the script: {text}")
    advice = (
        "change the shape or where it goes: fewer nodes/GPUs/CPUs per node, --partition, --account, --qos or --time"
    )
    if re.search(r"gres|gpu", text, re.I):
        advice = (
            "the partition's nodes do not have that many GPUs (or that --gpu-type): `sinfo -o '%P %N %G'` lists them"
        )
    elif re.search(r"time limit", text, re.I):
        advice = "the --time is above the partition's limit: `sinfo -o '%P %l'`"
    return Check(name, FAIL, f"sbatch refuses the script: {text}", advice=advice)


def read_reports(log_dir: Path, job_id: str) -> dict[int, dict]:
    reports: dict[int, dict] = {}
    from .probe import report_name

    for path in log_dir.glob(report_name(job_id, "*")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        reports[int(data.get("rank", path.stem.rsplit("_", 1)[1]))] = data
    return reports


def read_logs(log_dir: Path, job_id: str, lines: int = 12) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(log_dir.glob(f"{job_id}_*_log.*")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        body = [line for line in text.splitlines() if line.strip() and not line.startswith("hpctf doctor: rank ")]
        if body:
            out[path.name] = "\n".join(body[-lines:])
    return out


def wait_for(records: list, deadline: float, poll_s: float = 0.3) -> dict[str, tuple[str, int | None, bool]]:
    """Wait for the records' jobs to end: {job id: (state, exit code, timed out)}.

    The exit-status file every hpctf script writes says a job ended the moment it does
    (accounting lags by seconds); the scheduler is asked every few seconds for jobs that
    end without one (cancelled while queued).
    """
    from .exits import job_exit_code
    from .registry import Registry
    from .runs import cancel, refresh
    from .states import JobState

    results: dict[str, tuple[str, int | None, bool]] = {}
    registry = Registry(Path(records[0].run_dir).parent.parent / "registry.sqlite")
    last_refresh = 0.0
    try:
        while True:
            live = [r for r in records if r.job_id not in results]
            if not live:
                return results
            for record in live:
                code = job_exit_code(record.log_dir, record.job_id)
                if code is not None:
                    results[record.job_id] = ("COMPLETED" if code == 0 else "FAILED", code, False)
            live = [r for r in records if r.job_id not in results]
            if live and time.monotonic() - last_refresh > 3:
                last_refresh = time.monotonic()
                refresh(registry, live)  # one scheduler call for all of them
                for record in live:
                    if JobState.from_slurm(record.state).finished:  # exit_code: the script's own first
                        results[record.job_id] = (record.state, record.exit_code, False)
            if time.monotonic() > deadline:
                late = [r for r in records if r.job_id not in results]
                refresh(registry, late)
                for record in late:
                    state = record.state
                    try:
                        cancel(record)
                    except HpctfError:
                        pass
                    results[record.job_id] = (state, None, True)
                return results
            time.sleep(poll_s)
    finally:
        registry.close()


@dataclass
class DoctorRun:
    shape: Shape
    checks: list[Check]
    jobs: list[JobResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict:
        primary = self.jobs[0]
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "shape": asdict(self.shape),
            "jobs": [
                {k: getattr(j, k) for k in ("launcher", "job_id", "run_dir", "state", "exit_code", "timed_out")}
                for j in self.jobs
            ],
            "checks": [asdict(c) for c in self.checks],
            "ranks": [rank_row(r, primary.reports[r]) for r in sorted(primary.reports)],
        }


def rank_row(rank: int, rep: dict) -> dict:
    return {
        "rank": rank,
        "host": rep.get("host"),
        "launcher_id": _launcher_id(rep),
        "local_rank": rep.get("local_rank"),
        "role": "/".join(map(str, (rep.get("tf_config") or {}).get("task", {}).values())) or None,
        "cuda_visible_devices": rep.get("cuda_visible_devices"),
    }


def run(
    spec: Any,
    *,
    template_dirs: Sequence[str | Path] = (),
    other_launcher: bool = True,
    timeout_s: float = 600,
    progress=None,
) -> DoctorRun:
    """Submit the doctor job(s) for ``spec``'s shape, wait, judge; nothing is raised for
    a failing check (only for a spec or target that cannot be planned at all)."""
    from . import submission

    say = progress or (lambda message: None)
    started = time.monotonic()
    with probe_folder() as source:
        spec = spec.with_changes(
            source_directory=source,
            entry_script=PROBE_NAME,
            script_params={},
            arguments=[],
            job_name=spec.job_name or "hpctf-doctor",
        )
        the_plan = submission.plan(spec, template_dirs=template_dirs)
        if the_plan.spec.time is None:  # neither the command line nor the target set one
            spec = spec.with_changes(time=DEFAULT_TIME)
            the_plan = submission.plan(spec, template_dirs=template_dirs)
        python = _script_python(the_plan.script)
        shape = Shape.from_spec(the_plan.spec, python)
        full = spec.with_changes(arguments=probe_arguments(shape, shape.launcher, full=True))
        plans = [(shape.launcher, submission.plan(full, template_dirs=template_dirs))]
        shape = Shape.from_spec(plans[0][1].spec, python)  # the local target picks free ports per plan
        if shape.backend == "mpi" and other_launcher and the_plan.target != "local":
            other = "mpirun" if shape.launcher == "srun" else "srun"
            other_spec = spec.with_changes(
                launcher=other, arguments=probe_arguments(shape, other, full=False), job_name=f"{spec.job_name}-{other}"
            )
            plans.append((other, submission.plan(other_spec, template_dirs=template_dirs)))

        if plans[0][1].target == "local":
            test_only = Check("sbatch --test-only", SKIP, "local target: the script runs with bash, not sbatch")
        else:
            say("sbatch --test-only ...")
            test_only = sbatch_test_only(plans[0][1].script)
        results = [JobResult(launcher=launcher) for launcher, _ in plans]
        records = []
        if test_only.status != FAIL:
            for (launcher, a_plan), result in zip(plans, results):
                try:
                    record = submission.schedule(a_plan)
                except HpctfError as err:
                    result.error = str(err)
                    continue
                result.job_id, result.run_dir = record.job_id, record.run_dir
                records.append(record)
                say(f"submitted doctor job {record.job_id} ({shape.launch_name(launcher)})")
    if records:
        say("waiting for the doctor job(s) to run ...")
        ended = wait_for(records, started + timeout_s)
        for result in results:
            if result.job_id in ended:
                result.state, result.exit_code, result.timed_out = ended[result.job_id]
                log_dir = Path(result.run_dir) / "logs"
                result.reports = read_reports(log_dir, result.job_id)
                result.logs = read_logs(log_dir, result.job_id)
    mpi_list = None
    if shape.backend == "mpi" and any(r.launcher == "srun" and not _mpi_ok(shape, r) for r in results if r.job_id):
        from .targetcheck import srun_mpi_list

        mpi_list = srun_mpi_list()
    checks = evaluate(shape, test_only, results[0], results[1] if len(results) > 1 else None, mpi_list)
    return DoctorRun(shape=shape, checks=checks, jobs=results, seconds=time.monotonic() - started)


def _script_python(script: str) -> str:
    """The interpreter the script starts (``PYTHON=...``, its first assignment)."""
    import shlex

    match = re.search(r"^PYTHON=(.*)$", script, re.M)
    try:
        return shlex.split(match.group(1))[0] if match else "python3"
    except (ValueError, IndexError):
        return "python3"


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------

MARKS = {PASS: "ok", FAIL: "FAIL", WARN: "warn", SKIP: "skip"}


def format_report(run: DoctorRun) -> str:
    from .table import format_table

    shape = run.shape
    jobs = (
        ", ".join(f"job {j.job_id} ({shape.launch_name(j.launcher)})" for j in run.jobs if j.job_id)
        or "no job submitted"
    )
    lines = [f"hpctf doctor: {shape.description}, {shape.launch_name()}; {jobs}", ""]
    lines.append(
        format_table(("", "CHECK", "RESULT"), [(MARKS[c.status], c.name, c.summary) for c in run.checks]).rstrip("\n")
    )
    primary = run.jobs[0]
    if primary.reports:
        rows = []
        for rank in sorted(primary.reports):
            row = rank_row(rank, primary.reports[rank])
            cuda = row["cuda_visible_devices"]
            rows.append(
                (
                    rank,
                    row["host"],
                    row["launcher_id"],
                    row["local_rank"],
                    row["role"] or "",
                    "(unset)" if cuda is None else (cuda or '""'),
                )
            )
        header = (
            "RANK",
            "HOST",
            "SLURM_PROCID" if shape.launcher == "srun" or shape.backend != "mpi" else "OMPI_RANK",
            "LOCAL",
            "ROLE",
            "CUDA_VISIBLE_DEVICES",
        )
        lines += ["", format_table(header, rows).rstrip("\n")]
    for check in run.checks:
        if check.status in (FAIL, WARN) and (check.advice or check.details):
            lines += ["", f"{MARKS[check.status]}: {check.name}: {check.summary}"]
            lines += [f"  {d}" for d in check.details]
            if check.advice:
                lines.append(f"  what to change: {check.advice}")
    failed = [c.name for c in run.checks if c.status == FAIL]
    run_dirs = ", ".join(j.run_dir for j in run.jobs if j.run_dir)
    lines.append("")
    if failed:
        lines.append(
            f"{len(failed)} check(s) failed: {', '.join(failed)} ({run.seconds:.1f} s; logs in {run_dirs or '-'})"
        )
    else:
        lines.append(f"all checks passed ({run.seconds:.1f} s; logs in {run_dirs})")
    return "\n".join(lines) + "\n"
