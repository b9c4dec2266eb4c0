"""Submission: a plan (everything but ``sbatch``), then scheduling it with the target's executor.

``--dry-run`` is :func:`plan` alone, and :func:`submit` is ``schedule(plan(spec))``, so
what a dry run shows is exactly what gets submitted.  Scheduling is all-or-nothing: if
``sbatch`` refuses the job, its run folder is removed and no record is written.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import executors, snapshot
from .errors import HpctfError
from .executors import Executor
from .private import Sharing, make_folder, open_to_search, private_home, write_file
from .registry import Registry, RunRecord, hpctf_home
from .render import JobPaths, render_for_target
from .runpaths import RunPaths, registry_file
from .spec import TensorFlow
from .targets import Target, apply_target, get_target

if TYPE_CHECKING:  # a plain submit never loads the sweep modules
    from .sweep.config import SweepConfig


@dataclass(frozen=True)
class SubmitPlan:
    spec: TensorFlow
    home: Path
    run_dir: Path
    paths: JobPaths
    script: str
    manifest: snapshot.Manifest
    target: str = "slurm"
    sweep: SweepConfig | None = None  # a sweep: the script is a job array, one element a trial
    cluster: str | None = None  # the cluster the site profile names (multi-cluster sites), else this one
    sharing: Sharing | None = None  # the target's share_with_group: the run folder is that group's too

    @property
    def executor(self) -> Executor:
        return executors.get(self.target)

    @property
    def script_path(self) -> Path:
        return RunPaths(self.run_dir).script

    @property
    def command(self) -> list[str]:
        if self.cluster is None:  # an executor of its own may take the script alone
            return self.executor.command(self.script_path)
        return self.executor.command(self.script_path, self.cluster)

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
            **({"sweep": self.sweep.to_dict(masked=True)} if self.sweep else {}),
        }


def plan(
    spec: TensorFlow,
    *,
    home: str | Path | None = None,
    template_dirs: Sequence[str | Path] = (),
    snapshot_limit_mb: float | None = None,
    target: Target | None = None,
    sweep: SweepConfig | None = None,
) -> SubmitPlan:
    """Everything ``submit`` does except writing files and calling ``sbatch``.

    The compute target (``spec.compute_target`` unless given) fills in the site's
    defaults first; the plan's spec is the one that runs. With ``sweep`` the job is a
    sweep of that spec: a job array whose folder holds the study.
    """
    target = target or get_target(spec.compute_target)
    spec = apply_target(spec, target)
    check_secrets(spec)
    executor = executors.get(target.executor)
    if sweep is not None:
        sweep = sweep_for_target(sweep, target, executor)
    spec = executor.adapt(spec, target, sweep)
    home = Path(home) if home else hpctf_home()
    run = RunPaths.new(home, spec.name)
    manifest = snapshot.scan(Path(spec.source_directory), snapshot_limit_mb, home=home)
    if Path(spec.entry_script).as_posix() not in manifest.files:
        raise HpctfError(
            f"entry_script={spec.entry_script!r} is not in the code snapshot of {spec.source_directory}: "
            f"it is left out by {snapshot.IGNORE_FILE} or the default ignores "
            f"({', '.join(snapshot.DEFAULT_IGNORES[:4])}, ...), "
            "or it is inside a linked folder"
        )
    paths = JobPaths(workdir=run.code, log_dir=run.logs, run_dir=run.run_dir, array=sweep is not None)
    script = render_for_target(spec, target, paths, template_dirs=template_dirs, sweep=sweep)
    return SubmitPlan(
        spec=spec,
        home=home,
        run_dir=run.run_dir,
        paths=paths,
        script=script,
        manifest=manifest,
        target=executor.name,
        sweep=sweep,
        cluster=target.cluster,
        sharing=Sharing.of(target.share_with_group),
    )


def check_secrets(spec: TensorFlow) -> None:
    """Every secret_environment_variables name is set here, where sbatch (or the local
    run) takes its value from: HpctfError naming the ones that are not."""
    import os

    missing = [name for name in spec.secret_environment_variables if name not in os.environ]
    if missing:
        raise HpctfError(
            f"secret_environment_variables: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set in this environment, which the job takes "
            "secrets from: export it before submitting (its value is never written to a file)"
        )


def sweep_for_target(sweep: SweepConfig, target: Target, executor: Executor) -> SweepConfig:
    """``sweep`` checked, with the site's study database (the target's ``sweep_storage``)
    unless it names its own; HpctfError where the executor cannot run job arrays."""
    if not executor.runs_arrays:
        raise HpctfError(f"compute_target={target.name!r}: the {executor.name} executor cannot run sweeps (job arrays)")
    if sweep.storage is None and target.sweep_storage:
        sweep = replace(sweep, storage=target.sweep_storage)
    return sweep.checked()


def schedule(plan: SubmitPlan, registry: Registry | None = None) -> RunRecord:
    """Write the run folder, start the script (``sbatch``, ...), record the run; all or nothing."""
    sharing = plan.sharing
    try:
        # Owner-only whatever the umask (hpctf.private); a target's share_with_group gives
        # the run to its group, and lets others search (not list) the folders above it.
        private_home(plan.home)
        make_folder(plan.run_dir.parent)
        if sharing is not None:
            open_to_search(plan.home, plan.run_dir.parent)
        make_folder(plan.run_dir, sharing, exist_ok=False)
        snapshot.materialise(plan.manifest, RunPaths(plan.run_dir).objects, plan.paths.workdir, sharing)
        make_folder(plan.paths.workdir, sharing)  # an empty source folder still gets its cwd
        make_folder(plan.paths.log_dir, sharing)
        write_file(plan.script_path, plan.script, sharing=sharing)
        write_file(
            RunPaths(plan.run_dir).spec_file,
            json.dumps(plan.spec.to_dict(), indent=2, default=str) + "\n",
            sharing=sharing,
        )
        if plan.sweep is not None:
            plan.sweep.write(plan.run_dir)
            prepare_study(plan.sweep, plan.run_dir)
        job_id = plan.executor.start(plan)
    except BaseException:
        shutil.rmtree(plan.run_dir, ignore_errors=True)
        raise
    record = RunRecord(
        job_id=job_id,
        target=plan.target,
        name=plan.spec.name,
        backend=plan.spec.backend,
        shape=shape_of(plan.spec) if plan.sweep is None else f"{plan.sweep.trials} trials of {shape_of(plan.spec)}",
        run_dir=str(plan.run_dir),
        log_dir=str(plan.paths.log_dir),
        command=shlex.join([plan.spec.entry_script, *plan.spec.command_arguments()]),
        submitted=time.time(),
        spec=json.dumps(plan.spec.to_dict(), default=str),
        sweep=None if plan.sweep is None else json.dumps(plan.sweep.to_dict()),
        cluster=plan.cluster or plan.executor.cluster(),
    )
    return (registry or Registry(registry_file(plan.home))).add(record)


def prepare_study(sweep: SweepConfig, folder: Path) -> None:
    """What a sweep's elements will need, checked before its job is queued: Optuna (where
    it is missing, every element would fail), and a database given by URL, whose study is
    made now (a URL or password that is wrong stops the submit). A journal file in the
    sweep folder is made by the first element that asks: importing Optuna here would double
    the submit's time for nothing it can check."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise HpctfError("sweeps need Optuna, which this Python lacks: pip install 'hpctf[sweep]'")
    if sweep.storage is not None:
        sweep.study(folder).optuna_study()


def shape_of(spec: TensorFlow) -> str:
    gpus = f" {spec.gpus}gpu/node" if spec.gpus else ""
    if spec.distributed_backend == "ps":
        parts = [f"{spec.parameter_server_count}ps", f"{spec.worker_count}w"] + (["chief"] if spec.chief else [])
        return f"{'+'.join(parts)} on {spec.node_count}n{gpus}"
    return f"{spec.node_count}x{spec.process_count_per_node}{gpus}"
