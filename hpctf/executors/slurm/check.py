"""``hpctf targets check NAME`` for a Slurm target: compare its profile with the live cluster.

Every check runs, and every mismatch is reported with what the cluster has instead, so a
new profile is fixed in one pass. Asks only the scheduler's own commands (``scontrol``,
``sinfo``, ``srun --mpi=list``, ``sacctmgr`` where accounting exists), each with a
timeout: a dead ``slurmctld`` makes them hang, not fail. A profile that names another
cluster (``cluster = "beta"``) is compared with that cluster: partitions, nodes and its
configuration are asked with ``--clusters``; ``srun --mpi=list`` says what this login
node's srun can start.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ...schedcall import MISSING, TIMED_OUT, call
from ...slurmtime import time_limit_seconds
from ...targets import MODULE_INITS, Target, gres_spec
from .. import MISMATCH, OK, SKIPPED, Finding
from .cluster import flag, without_cluster_lines

TIMEOUT_S = 20


def _run(*command: str) -> tuple[int, str]:
    reply = call(command, TIMEOUT_S)
    if reply.failure == MISSING:
        return 127, f"{command[0]}: not found"
    if reply.failure == TIMED_OUT:
        return 124, f"{' '.join(command)}: no answer in {TIMEOUT_S}s (is slurmctld up?)"
    return reply.returncode, (reply.stdout + reply.stderr).strip()


def _ask(target: Target, command: str, *args: str) -> tuple[int, str]:
    """``command`` of the profile's cluster: with ``--clusters NAME`` where the profile names
    another cluster than this login node's (multi-cluster sites: scontrol and sinfo reach its
    controller through slurmdbd), less the ``CLUSTER: NAME`` line that option may add."""
    code, out = _run(command, *flag(target.cluster), *args)
    return code, without_cluster_lines(out)


def parse_fields(line: str) -> dict[str, str]:
    """``scontrol -o`` output: ``Key=Value Key=Value ...`` on one line."""
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def minutes(limit: str) -> float | None:
    """A Slurm time (``1-02:00:00``, ``30``, ``UNLIMITED``) in minutes; None is unlimited."""
    seconds = time_limit_seconds(limit)
    return None if seconds is None else seconds / 60


def gres_entries(text: str) -> list[tuple[str, str | None, int]]:
    """``gpu:tesla:2(S:0-1),gpu:a100:4`` -> ``[("gpu", "tesla", 2), ("gpu", "a100", 4)]``."""
    entries = []
    for item in re.split(r",(?![^()]*\))", text):
        item = re.sub(r"\(.*?\)", "", item).strip()
        if not item or item == "(null)":
            continue
        parts = item.split(":")
        count = int(parts[-1]) if parts[-1].isdigit() else 1
        kind = parts[1] if len(parts) == 3 or (len(parts) == 2 and not parts[1].isdigit()) else None
        entries.append((parts[0], kind, count))
    return entries


def mpi_plugin_names(listing: str) -> list[str]:
    """Plugin names from ``srun --mpi=list``, in its order (22.05+: indented names and a
    line of pmix versions; older releases: ``srun: pmix`` lines)."""
    plugins: list[str] = []
    for line in listing.splitlines():
        line = line.strip().removeprefix("srun: ").strip()
        versions = re.match(r"specific pmix plugin versions available:\s*(.*)", line)
        if versions:
            plugins += [v.strip() for v in versions.group(1).split(",") if v.strip()]
        elif re.fullmatch(r"(?:mpi/)?[a-z][a-z0-9_]*", line):
            plugins.append(line.removeprefix("mpi/"))
    return list(dict.fromkeys(plugins))


def mpi_plugins(listing: str) -> set[str]:
    return set(mpi_plugin_names(listing))


def srun_mpi_list() -> str | None:
    """The MPI plugins this cluster's srun offers (``pmix, pmi2, ...``), or None."""
    code, out = _run("srun", "--mpi=list")
    return (", ".join(mpi_plugin_names(out)) or None) if code == 0 else None


def check_slurm(target: Target) -> list[Finding]:
    findings: list[Finding] = []
    code, out = _ask(target, "scontrol", "show", "partition", "-o")
    if code != 0:
        findings = [Finding("scheduler", MISMATCH, f"cannot ask Slurm for its partitions: {out}")]
        # The profile's cluster may be unknown to accounting: say so, and compare nothing
        # with this cluster's partitions instead.
        return findings + (_accounting(target) if target.cluster else [])
    partitions = {f.get("PartitionName"): f for f in map(parse_fields, out.splitlines()) if f.get("PartitionName")}

    name = target.partition or next((n for n, f in partitions.items() if f.get("Default") == "YES"), None)
    partition = partitions.get(name) if name else None
    if partition is None:
        detail = f"no partition {name!r}" if name else "no partition named and the cluster has no default"
        findings.append(
            Finding("partition", MISMATCH, f"{detail}; the cluster has {', '.join(sorted(partitions)) or 'none'}")
        )
    else:
        state = partition.get("State", "?")
        status = OK if state == "UP" else MISMATCH
        findings.append(Finding("partition", status, f"{name} (state {state}, nodes {partition.get('Nodes', '?')})"))
        findings.append(_time_limit(target, partition))
    findings.append(_gpus(target, name if partition else None))
    if target.ps_partition is not None:
        findings.append(_ps_partition(target.ps_partition, partitions))
    config = _ask(target, "scontrol", "show", "config")  # asked once: two checks read it
    findings.append(_hetjobs(target, config))
    findings.extend(_scheduler_details(target, config))
    findings.extend(_site_paths(target))
    return findings


def _ps_partition(name: str, partitions: dict[str, dict[str, str]]) -> Finding:
    """The profile's partition for parameter servers (a heterogeneous job's component 0)."""
    partition = partitions.get(name)
    if partition is None:
        known = ", ".join(sorted(partitions)) or "none"
        return Finding(
            "ps_partition", MISMATCH, f"no partition {name!r} for the parameter servers; the cluster has {known}"
        )
    state = partition.get("State", "?")
    detail = f"{name} (state {state}, nodes {partition.get('Nodes', '?')})"
    if state != "UP":
        return Finding("ps_partition", MISMATCH, f"{detail}: not UP, parameter servers there would not start")
    return Finding("ps_partition", OK, detail)


def _hetjobs(target: Target, config: tuple[int, str]) -> Finding:
    """Slurm starts heterogeneous jobs (parameter servers on a partition of their own:
    ``ps_partition``, ``--ps-partition``/``--ps-nodes``) from the backfill scheduler only.
    ``config``: ``scontrol show config``'s exit code and output."""
    code, out = config
    found = re.search(r"^\s*SchedulerType\s*=\s*(\S+)", out or "", re.M) if code == 0 else None
    if found is None:
        return Finding("hetjob", SKIPPED, f"cannot read SchedulerType from `scontrol show config`: {out or code}")
    scheduler = found.group(1)
    if scheduler == "sched/backfill":
        return Finding("hetjob", OK, "SchedulerType=sched/backfill: Slurm starts heterogeneous jobs")
    detail = (
        f"SchedulerType={scheduler}: Slurm starts heterogeneous jobs only from the backfill scheduler, so "
        "a ps job with its parameter servers on their own partition (ps_partition, --ps-partition/--ps-nodes) "
        "would stay pending; ask your admin for SchedulerType=sched/backfill"
    )
    if target.ps_partition is None:
        return Finding("hetjob", SKIPPED, f"the profile names no ps_partition; note: {detail}")
    return Finding("hetjob", MISMATCH, detail)


def _time_limit(target: Target, partition: dict[str, str]) -> Finding:
    limit = partition.get("MaxTime", "UNLIMITED")
    if target.time is None:
        return Finding("time", SKIPPED, f"the profile sets no default time (partition limit {limit})")
    wanted, allowed = minutes(target.time), minutes(limit)
    if allowed is None or (wanted is not None and wanted <= allowed):
        return Finding("time", OK, f"{target.time} fits the partition limit {limit}")
    return Finding(
        "time",
        MISMATCH,
        f"{target.time} is over the partition limit {limit}: jobs would stay pending (PartitionTimeLimit)",
    )


def _gpus(target: Target, partition: str | None) -> Finding:
    wants_gpus = target.gpu_type or target.gpus_per_node or target.gres_name != "gpu"
    if not wants_gpus:
        return Finding("gpus", SKIPPED, "the profile names no GPU type or count")
    # Without a usable partition, look at every node: a wrong GPU type is still reported.
    where = ("-p", partition) if partition else ()
    scope = partition or "the cluster"
    code, out = _ask(target, "sinfo", "-N", "-h", *where, "-o", "%N|%G")
    if code != 0:
        return Finding("gpus", MISMATCH, f"sinfo failed: {out}")
    wanted = gres_spec(target.gres_name, target.gpu_type, target.gpus_per_node or 1)
    seen, matching = set(), set()
    for line in out.splitlines():
        node, _, gres = line.partition("|")
        for kind, gpu_type, count in gres_entries(gres):
            seen.add(f"{kind}:{gpu_type}:{count}" if gpu_type else f"{kind}:{count}")
            if (
                kind == target.gres_name
                and (target.gpu_type is None or gpu_type == target.gpu_type)
                and count >= (target.gpus_per_node or 1)
            ):
                matching.add(node)
    if matching:
        return Finding("gpus", OK, f"{len(matching)} node(s) of {scope} have {wanted}")
    return Finding(
        "gpus", MISMATCH, f"no node of {scope} has gres {wanted}; the nodes have {', '.join(sorted(seen)) or 'no GRES'}"
    )


def _scheduler_details(target: Target, config: tuple[int, str]) -> list[Finding]:
    findings = [_gpu_request(target, config)]
    if target.launcher != "mpirun":
        findings.append(_pmi(target))
    findings.extend(_accounting(target))
    container = _container(target)
    if container is not None:
        findings.append(container)
    return findings


def _gpu_request(target: Target, config: tuple[int, str]) -> Finding:
    from .version import detect

    code, out = config
    if flag(target.cluster):  # another cluster's release, from its own configuration
        found = re.search(r"^\s*SLURM_VERSION\s*=\s*(\d+)\.(\d+)\.(\d+)", out if code == 0 else "", re.M)
        version = tuple(int(part) for part in found.groups()) if found else None
    else:
        version = detect()
    shown = f"{version[0]}.{version[1]:02d}.{version[2]}" if version else "unknown"
    if target.gpu_request == "gpus-per-node":
        select = re.search(r"SelectType\s*=\s*(\S+)", out if code == 0 else "")
        ok = (
            version is not None
            and version[:2] >= (19, 5)
            and select is not None
            and select.group(1) == "select/cons_tres"
        )
        return Finding(
            "gpu_request",
            OK if ok else MISMATCH,
            (
                "--gpus-per-node needs Slurm >= 19.05 and select/cons_tres; "
                f"this is Slurm {shown} with {select.group(1) if select else 'unknown'}"
            ),
        )
    return Finding("gpu_request", OK, f"--gres=gpu:N (Slurm {shown})")


def _pmi(target: Target) -> Finding:
    pmi = target.pmi or "pmix"
    code, out = _run("srun", "--mpi=list")
    plugins = mpi_plugins(out)
    if code != 0:
        return Finding("pmi", MISMATCH, f"srun --mpi=list failed: {out}")
    if pmi in plugins:
        return Finding("pmi", OK, f"srun --mpi={pmi} is available")
    return Finding("pmi", MISMATCH, f"srun has no --mpi={pmi}; it has {', '.join(sorted(plugins))}")


def _accounting(target: Target) -> list[Finding]:
    findings = []
    formats = {"account": "account", "qos": "name", "cluster": "cluster"}
    # A profile's cluster (multi-cluster sites) is reached through the database: --clusters
    # knows only the clusters it lists.
    for kind, value in (("account", target.account), ("qos", target.qos), ("cluster", target.cluster)):
        if value is None:
            continue
        code, out = _run("sacctmgr", "-n", "-P", "show", kind, value, "format=" + formats[kind])
        if code != 0:
            findings.append(
                Finding(kind, SKIPPED, f"cannot ask accounting (sacctmgr): {out.splitlines()[-1] if out else code}")
            )
        elif value in out.split():
            findings.append(Finding(kind, OK, f"{value} exists"))
        else:
            findings.append(Finding(kind, MISMATCH, f"no {kind} {value!r} in the accounting database"))
    return findings


def _container(target: Target) -> Finding | None:
    if target.container_runtime == "pyxis":
        code, out = _run("srun", "--help")
        ok = "--container-image" in out
        return Finding(
            "container",
            OK if ok else MISMATCH,
            "srun has --container-image (Pyxis)"
            if ok
            else "srun has no --container-image: the Pyxis plugin is not installed",
        )
    if target.container_runtime or target.container_image:
        found = (
            shutil.which(target.container_runtime or "apptainer")
            or shutil.which("apptainer")
            or shutil.which("singularity")
        )
        return Finding(
            "container",
            OK if found else MISMATCH,
            f"{found} (on this node)"
            if found
            else "neither apptainer nor singularity is on PATH here (compute nodes may differ)",
        )
    return None


def _site_paths(target: Target) -> list[Finding]:
    findings = []
    if target.python:
        ok = os.access(target.python, os.X_OK) or shutil.which(target.python) is not None
        findings.append(
            Finding(
                "python", OK if ok else MISMATCH, target.python if ok else f"{target.python} is not an executable here"
            )
        )
    if target.env_cache:
        cache = Path(target.env_cache)
        parent = next((p for p in (cache, *cache.parents) if p.exists()), None)
        ok = parent is not None and os.access(parent, os.W_OK)
        detail = f"{cache} is writable" if ok else f"{cache} cannot be created or written"
        if ok:  # what the job's hpctf.envs would refuse, said before a job fails on it
            from ...job.envs import EnvironmentBuildError, check_cache

            try:
                check_cache(cache, cache / "pip-", target.trust_group)
            except EnvironmentBuildError as err:
                ok, detail = False, str(err)
        findings.append(Finding("env_cache", OK if ok else MISMATCH, detail))
    if target.templates:
        ok = Path(target.templates).is_dir()
        findings.append(
            Finding("templates", OK if ok else MISMATCH, target.templates + ("" if ok else ": no such folder"))
        )
    if target.modules or target.module_paths:
        findings.append(_modules(target))
    return findings


def _modules(target: Target) -> Finding:
    """Each module is available (``module is-avail``, Lmod and Environment Modules 4+)."""
    import shlex

    init = next((f for f in MODULE_INITS if Path(f).is_file()), None)
    if init is None:
        return Finding(
            "modules", MISMATCH, "the profile loads modules but this node has no Lmod or Environment Modules"
        )
    lines = [f". {init} >/dev/null 2>&1"] + [f"module use {shlex.quote(p)}" for p in target.module_paths]
    lines += [f"module is-avail {shlex.quote(m)} || echo MISSING {shlex.quote(m)}" for m in target.modules]
    code, out = _run("bash", "-c", "\n".join(lines))
    missing = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("MISSING ")]
    if missing:
        return Finding("modules", MISMATCH, f"not available: {', '.join(missing)}")
    return Finding("modules", OK, f"{len(target.modules)} module(s) available")
