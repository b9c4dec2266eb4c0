"""Submission: a plan (everything but ``sbatch``), then scheduling it.

``--dry-run`` is :func:`plan` alone, and :func:`submit` is ``schedule(plan(spec))``, so
what a dry run shows is exactly what gets submitted.  Scheduling is all-or-nothing: if
``sbatch`` refuses the job, its run folder is removed and no record is written.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import snapshot
from .errors import HpctfError
from .registry import Registry, RunRecord, hpctf_home
from .render import JobPaths, render_for_target
from .spec import TensorFlow
from .targets import Target, apply_target, get_target

SBATCH_TIMEOUT_S = 60


@dataclass(frozen=True)
class SubmitPlan:
    spec: TensorFlow
    home: Path
    run_dir: Path
    paths: JobPaths
    script: str
    manifest: snapshot.Manifest
    target: str = "slurm"

    @property
    def script_path(self) -> Path:
        return self.run_dir / "job.sbatch"

    @property
    def command(self) -> list[str]:
        if self.target == "local":
            return ["bash", str(self.script_path)]
        return ["sbatch", "--parsable", str(self.script_path)]

    def describe(self) -> dict:
        return {
            "target": self.target,
            "run_dir": str(self.run_dir),
            "log_dir": str(self.paths.log_dir),
            "snapshot": {
                "digest": self.manifest.digest,
                "files": len(self.manifest.files),
                "bytes": self.manifest.total_bytes,
            },
            "command": shlex.join(self.command),
            "script": self.script,
        }


def plan(
    spec: TensorFlow,
    *,
    home: str | Path | None = None,
    template_dirs: Sequence[str | Path] = (),
    snapshot_limit_mb: float | None = None,
    target: Target | None = None,
) -> SubmitPlan:
    """Everything ``submit`` does except writing files and calling ``sbatch``.

    The compute target (``spec.compute_target`` unless given) fills in the site's
    defaults first; the plan's spec is the one that runs.
    """
    target = target or get_target(spec.compute_target)
    spec = apply_target(spec, target)
    executor = target.executor
    if executor == "local" and spec.container == "pyxis":
        raise HpctfError(
            f"compute_target={target.name!r} runs jobs on this machine, where there is no Pyxis "
            "(srun --container-image): use container_runtime='apptainer'"
        )
    if executor == "local" and spec.distributed_backend == "ps" and spec.port_base is None:
        from .local import free_port_base

        spec = spec.with_changes(port_base=free_port_base(spec.task_count))
    home = Path(home) if home else hpctf_home()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.name).strip("-")[:40] or "job"
    run_dir = home / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(3)}"
    manifest = snapshot.scan(Path(spec.source_directory), snapshot_limit_mb)
    if Path(spec.entry_script).as_posix() not in manifest.files:
        raise HpctfError(
            f"entry_script={spec.entry_script!r} is not in the code snapshot of {spec.source_directory}: "
            f"it is left out by {snapshot.IGNORE_FILE} or the default ignores "
            f"({', '.join(snapshot.DEFAULT_IGNORES[:4])}, ...), "
            "or it is inside a linked folder"
        )
    paths = JobPaths(workdir=run_dir / "code", log_dir=run_dir / "logs")
    script = render_for_target(spec, target, paths, template_dirs=template_dirs)
    return SubmitPlan(
        spec=spec, home=home, run_dir=run_dir, paths=paths, script=script, manifest=manifest, target=executor
    )


def schedule(plan: SubmitPlan, registry: Registry | None = None) -> RunRecord:
    """Write the run folder, ``sbatch`` the script, record the run; all or nothing."""
    try:
        plan.run_dir.mkdir(parents=True)
        snapshot.materialise(plan.manifest, plan.home / "objects", plan.paths.workdir)
        plan.paths.workdir.mkdir(exist_ok=True)  # an empty source folder still gets its cwd
        plan.paths.log_dir.mkdir()
        plan.script_path.write_text(plan.script)
        (plan.run_dir / "spec.json").write_text(json.dumps(plan.spec.to_dict(), indent=2, default=str) + "\n")
        if plan.target == "local":
            from . import local

            job_id = local.new_job_id()
            local.start(
                plan.script_path, plan.run_dir, plan.paths.log_dir, job_id, plan.spec.name, plan.spec.task_count
            )
        else:
            job_id = sbatch(plan.command)
    except BaseException:
        shutil.rmtree(plan.run_dir, ignore_errors=True)
        raise
    record = RunRecord(
        job_id=job_id,
        target=plan.target,
        name=plan.spec.name,
        backend=plan.spec.backend,
        shape=shape_of(plan.spec),
        run_dir=str(plan.run_dir),
        log_dir=str(plan.paths.log_dir),
        command=shlex.join([plan.spec.entry_script, *plan.spec.command_arguments()]),
        submitted=time.time(),
        spec=json.dumps(plan.spec.to_dict(), default=str),
    )
    return (registry or Registry(plan.home / "registry.sqlite")).add(record)


def sbatch(command: list[str]) -> str:
    """Run ``sbatch --parsable``; its job id (``1234`` or ``1234;cluster`` -> ``1234``)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SBATCH_TIMEOUT_S)
    except FileNotFoundError:
        raise HpctfError("sbatch is not on PATH: run hpctf on a Slurm login node") from None
    except subprocess.TimeoutExpired:
        raise HpctfError(f"sbatch did not answer in {SBATCH_TIMEOUT_S}s (is slurmctld up?)") from None
    if done.returncode != 0:
        raise HpctfError(f"sbatch refused the job: {done.stderr.strip() or done.stdout.strip()}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise HpctfError(f"sbatch printed no job id: {done.stdout!r}")
    return job_id


def shape_of(spec: TensorFlow) -> str:
    gpus = f" {spec.gpus}gpu/node" if spec.gpus else ""
    if spec.distributed_backend == "ps":
        parts = [f"{spec.parameter_server_count}ps", f"{spec.worker_count}w"] + (["chief"] if spec.chief else [])
        return f"{'+'.join(parts)} on {spec.node_count}n{gpus}"
    return f"{spec.node_count}x{spec.process_count_per_node}{gpus}"
