"""Where a run's files are: one place that knows the layout of ``$HPCTF_HOME``.

::

    $HPCTF_HOME/registry.sqlite          the run history
    $HPCTF_HOME/objects/                 code snapshots, by content
    $HPCTF_HOME/cache/hashes/            each source folder's file hashes, by stat data
    $HPCTF_HOME/runs/<stamp>-<name>-<hex>/
        job.sbatch  spec.json  code/  logs/<job>_<task>_log.{out,err}  logs/<job>_exitcode
        outputs/      what the training keeps: models, checkpoints ($HPCTF_OUTPUT_DIR)
        tensorboard/  TensorBoard event files ($HPCTF_TENSORBOARD_DIR)
        metrics/      hpctf.log_metric's files, rank-<R>.jsonl ($HPCTF_METRICS_DIR)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

REGISTRY_FILE = "registry.sqlite"


def registry_file(home: str | Path) -> Path:
    """The run history of the hpctf home ``home``."""
    return Path(home) / REGISTRY_FILE


def hash_cache_dir(home: str | Path) -> Path:
    """Where the snapshot keeps each source folder's file hashes (``hpctf.hashcache``)."""
    return Path(home) / "cache" / "hashes"


def log_file(log_dir: str | Path, job_id: str, task: int | str = 0, stream: str = "out") -> Path:
    """A task's log, named as submitit names them (``<job>_<task>_log.out``), so that
    submitit's ``Job.stdout()`` finds it."""
    return Path(log_dir) / f"{job_id}_{task}_log.{stream}"


# What a run keeps beside its logs, and the variable that names each folder in the job.
KEPT = {"outputs": "HPCTF_OUTPUT_DIR", "tensorboard": "HPCTF_TENSORBOARD_DIR", "metrics": "HPCTF_METRICS_DIR"}


def kept_dirs(folder: str | Path) -> dict[str, Path]:
    """The folders of :data:`KEPT` under ``folder`` (a run folder)."""
    return {name: Path(folder) / name for name in KEPT}


@dataclass(frozen=True)
class RunPaths:
    """The folder of one run and everything in it."""

    run_dir: Path

    @classmethod
    def new(cls, home: Path, name: str) -> RunPaths:
        """A fresh run folder under ``home`` (not created yet) for a job called ``name``."""
        import secrets  # hashlib, hmac, random: ~5 ms that status and ls never need

        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "job"
        return cls(home / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(3)}")

    @classmethod
    def of(cls, record) -> RunPaths:
        """The paths of a recorded run (a :class:`~hpctf.registry.RunRecord`)."""
        return cls(Path(record.run_dir))

    @property
    def home(self) -> Path:
        return self.run_dir.parent.parent

    @property
    def registry(self) -> Path:
        return registry_file(self.home)

    @property
    def objects(self) -> Path:
        return self.home / "objects"

    @property
    def code(self) -> Path:
        return self.run_dir / "code"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def outputs(self) -> Path:
        return kept_dirs(self.run_dir)["outputs"]

    @property
    def tensorboard(self) -> Path:
        return kept_dirs(self.run_dir)["tensorboard"]

    @property
    def metrics(self) -> Path:
        return kept_dirs(self.run_dir)["metrics"]

    @property
    def script(self) -> Path:
        return self.run_dir / "job.sbatch"

    @property
    def spec_file(self) -> Path:
        return self.run_dir / "spec.json"

    def log(self, job_id: str, task: int | str = 0, stream: str = "out") -> Path:
        return log_file(self.logs, job_id, task, stream)

    def exit_file(self, job_id: str) -> Path:
        from .exits import exit_status_file

        return exit_status_file(self.logs, job_id)
