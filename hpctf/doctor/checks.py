"""Judging: pure functions of the shape and what the ranks wrote, one per check, and
:func:`evaluate`, all of them in the report's order."""

from __future__ import annotations

from .environment import environment_check, keras_check
from .hints import first_of, log_hints, missing_summary, tail
from .model import FAIL, NOT_STARTED, PASS, PROBE_TIMEOUT_S, SKIP, WARN, Check, JobResult, Shape, launcher_id
from .mpi import mpi_check


def evaluate(
    shape: Shape, test_only: Check, primary: JobResult, other: JobResult | None = None, mpi_list: str | None = None
) -> list[Check]:
    """Every check, in the report's order."""
    if primary.job_id is None and test_only.status == FAIL:
        names = ["doctor job", "ranks start", "GPU visibility", "hostnames", "Python environment", "Keras"]
        if shape.het_partitions is not None:
            names[3:3] = ["partitions", "ps across partitions"]
        return [test_only] + [Check(n, SKIP, "not run: sbatch --test-only refused the script") for n in names]
    checks = [test_only, job_check(shape, primary), ranks_check(shape, primary)]
    if shape.backend == "mpi":
        checks.append(mpi_check(shape, primary, other, mpi_list))
        if other is not None:
            checks.append(mpi_check(shape, other, primary, mpi_list, secondary=True))
    if shape.het_partitions is not None:
        checks.append(partitions_check(shape, primary))
    checks += [gpu_check(shape, primary), hostname_check(shape, primary)]
    if shape.backend == "ps":
        checks.append(ports_check(shape, primary))
    if shape.het_partitions is not None:
        checks.append(cross_partition_check(shape, primary))
    checks += [environment_check(shape, primary), keras_check(shape, primary)]
    return checks


def job_check(shape: Shape, result: JobResult) -> Check:
    name = "doctor job"
    if result.error:
        return Check(name, FAIL, result.error, advice="fix what sbatch says, then rerun hpctf doctor")
    if result.timed_out:
        return _timed_out_check(name, result)
    if result.state == "COMPLETED" and result.exit_code == 0:
        return Check(name, PASS, f"job {result.job_id} COMPLETED (exit code 0)")
    if len(result.reports) < shape.tasks:  # why is for 'ranks start' to say
        return Check(name, FAIL, missing_summary(result))
    hints = log_hints(shape, result.log_text)
    return Check(
        name,
        FAIL,
        missing_summary(result),
        advice="; ".join(hints) or f"read the logs in {result.run_dir}/logs",
        details=tail(result),
    )


def _timed_out_check(name: str, result: JobResult) -> Check:
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
    return Check(name, FAIL, summary, advice=advice, details=tail(result))


def ranks_check(shape: Shape, result: JobResult) -> Check:
    name = "ranks start"
    reports = result.reports
    missing = [r for r in range(shape.tasks) if r not in reports]
    per_host: dict[str, int] = {}
    for report in reports.values():
        per_host[report["host"]] = per_host.get(report["host"], 0) + 1
    hosts = ", ".join(f"{h} ({n})" for h, n in sorted(per_host.items()))
    if missing:
        hints = log_hints(shape, result.log_text)
        if not reports:
            summary = f"no rank of {shape.tasks} started ({missing_summary(result)})"
        else:
            summary = (
                f"{len(reports)}/{shape.tasks} ranks reported (from {hosts}); missing: {', '.join(map(str, missing))}"
            )
        return Check(
            name,
            FAIL,
            summary,
            advice="; ".join(hints) or f"read the missing ranks' logs in {result.run_dir}/logs",
            details=tail(result),
        )
    problems = _numbering_problems(shape, reports)
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


def _numbering_problems(shape: Shape, reports: dict[int, dict]) -> list[str]:
    """Ranks the launcher numbers differently from hpctf, or that see another world size."""
    problems: list[str] = []
    for rank, report in sorted(reports.items()):
        their_id = launcher_id(report)
        if their_id is not None and str(rank) != str(their_id):
            problems.append(f"rank {rank} on {report['host']}: HPCTF_RANK={rank} but the launcher says {their_id}")
        if report.get("world_size") != shape.tasks:
            problems.append(
                f"rank {rank} on {report['host']}: world size {report.get('world_size')}, expected {shape.tasks}"
            )
    return problems


def _role(shape: Shape, rank: int) -> str | None:
    return shape.roles[rank][0] if shape.backend == "ps" and rank < len(shape.roles) else None


def gpu_check(shape: Shape, result: JobResult) -> Check:
    name = "GPU visibility"
    if not shape.gpus:
        return Check(name, SKIP, "no GPUs requested")
    if not result.reports:
        return Check(name, SKIP, NOT_STARTED)
    problems, by_host = _gpu_problems(shape, result)
    driver = any(rep.get("nvidia_driver") for rep in result.reports.values())
    note = _gpu_note(result, driver)
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
    envs = [rep["env"] for rep in result.reports.values() if rep.get("env")]
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


def _gpu_problems(shape: Shape, result: JobResult) -> tuple[list[str], dict[str, dict[str, list[int]]]]:
    """What is wrong with the ranks' CUDA_VISIBLE_DEVICES, and {host: {GPU: ranks that see it}}."""
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
    return problems, by_host


def _gpu_note(result: JobResult, driver: bool) -> str:
    """What TensorFlow saw of the GPUs, or that no CUDA code could run (no driver)."""
    if not driver:
        return (
            "; no NVIDIA driver on the nodes (/proc/driver/nvidia is missing): the GPUs may be fake or "
            "absent, so only CUDA_VISIBLE_DEVICES was checked, no CUDA code ran"
        )
    tf_seen = sorted(
        {
            f"{rep['host']}: {rep['env']['tf_gpus']}"
            for rep in result.reports.values()
            if (rep.get("env") or {}).get("tf_gpus") is not None
        }
    )
    return f"; TensorFlow sees GPUs per node: {', '.join(tf_seen)}" if tf_seen else ""


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
        span = _port_span(shape, reports)
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


def _port_span(shape: Shape, reports: dict[int, dict]) -> str:
    first = shape.port_base if shape.port_base is not None else _first_port(reports)
    return f"{first}-{first + shape.tasks - 1}"


def _who(shape: Shape, rank: int, host: str) -> str:
    role = "/".join(map(str, shape.roles[rank])) if rank < len(shape.roles) else str(rank)
    return f"{role} (rank {rank}) on {host}"


def _partition_name(shape: Shape, component: int) -> str:
    return (shape.het_partitions or [None, None])[component] or "the default partition"


def partitions_check(shape: Shape, result: JobResult) -> Check:
    """A heterogeneous job: every task runs on a node of its own component, in that
    component's partition (parameter servers: component 0; chief and workers: 1), as the
    job's environment (``SLURM_JOB_PARTITION_HET_GROUP_N``, ``..._NODELIST_HET_GROUP_N``) says."""
    name = "partitions"
    if not result.reports:
        return Check(name, SKIP, NOT_STARTED)
    problems: list[str] = []
    placed: dict[int, set[str]] = {0: set(), 1: set()}
    wrong_place = False
    for rank, rep in sorted(result.reports.items()):
        component = shape.component(rank)
        groups = rep.get("het_groups")
        who = _who(shape, rank, rep["host"])
        if component is None:
            continue
        if not groups or len(groups) <= component:
            problems.append(f"{who}: not in a heterogeneous job step (SLURM_HET_SIZE is unset or too small)")
            wrong_place = True
            continue
        group = groups[component]
        expected = shape.het_partitions[component] if shape.het_partitions else None
        if expected is not None and group.get("partition") != expected:
            problems.append(
                f"component {component} of {who} is in partition {group.get('partition')}, expected {expected}"
            )
        if rep["host"] not in group.get("nodes", []):
            wrong_place = True
            problems.append(
                f"{who} is not on a node of its component {component} "
                f"({group.get('partition')}: {group.get('nodelist') or 'no nodes'})"
            )
        else:
            placed[component].add(rep["host"])
    if problems:
        advice = (
            "the tasks are not started per component: the script must launch them with `srun --het-group=0,1` "
            "and `python -m hpctf.runtime --het` (a site srun wrapper or an SLURM_HET_* setting may interfere)"
            if wrong_place
            else "Slurm placed a component in another partition: check --ps-partition/--partition (and the "
            "target's ps_partition) against `sinfo -s`"
        )
        return Check(name, FAIL, first_of(problems), advice=advice, details=problems)
    where = [
        f"{label} on {', '.join(sorted(placed[c])) or '?'} ({_partition_name(shape, c)})"
        for c, label in (
            (0, "parameter servers"),
            (1, "chief and workers" if any(r[0] == "chief" for r in shape.roles) else "workers"),
        )
    ]
    return Check(name, PASS, f"{'; '.join(where)}: each task on a node of its own partition")


def cross_partition_check(shape: Shape, result: JobResult) -> Check:
    """A heterogeneous job: every chief and worker reaches every parameter server, from
    its partition's nodes to theirs (the probe's connections, ``--ports``)."""
    name = "ps across partitions"
    reports = {r: rep for r, rep in result.reports.items() if rep.get("ports")}
    ps_addresses: set[str] = set()
    for rep in reports.values():
        ps_addresses.update(((rep.get("tf_config") or {}).get("cluster") or {}).get("ps", []))
    clients = {r: rep for r, rep in reports.items() if shape.component(r) == 1}
    if not clients or not ps_addresses:
        return Check(name, SKIP, NOT_STARTED)
    here, there = _partition_name(shape, 1), _partition_name(shape, 0)
    problems: list[str] = []
    pairs = 0
    for rank, rep in sorted(clients.items()):
        for peer, error in sorted(rep["ports"].get("reached", {}).items()):
            if peer not in ps_addresses:
                continue
            pairs += 1
            if error:
                problems.append(
                    f"{_who(shape, rank, rep['host'])} ({here}) cannot reach parameter server {peer} ({there}): {error}"
                )
    missing = [r for r in range(shape.tasks) if shape.component(r) == 1 and r not in clients]
    if missing:
        problems.append(f"chief/worker tasks {', '.join(map(str, missing))} did not report (see 'ranks start')")
    if problems:
        return Check(
            name,
            FAIL,
            first_of(problems),
            advice=(
                f"the nodes of {here} cannot connect to the parameter servers' nodes in {there} on ports "
                f"{_port_span(shape, reports)}: a firewall or separate networks between the partitions; ask your "
                "admin which port range is open between them and pass it as --port-base, or choose a "
                "--ps-partition whose nodes the workers reach"
            ),
            details=problems,
        )
    return Check(
        name,
        PASS,
        f"{len(clients)} chief/worker task(s) in {here} reach all {len(ps_addresses)} parameter server(s) in "
        f"{there} ({pairs} connections)",
    )
