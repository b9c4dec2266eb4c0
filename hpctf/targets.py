"""Compute targets: named site profiles that say how jobs run on one cluster.

``compute_target`` in the estimator (``--target`` on the CLI) names a profile. Two are
built in: ``slurm`` (submit with ``sbatch``) and ``local`` (run on this machine). Sites add
their own in TOML, in two files read in this order, later ones winning key by key:

- the user's file: ``$HPCTF_CONFIG``, else ``${XDG_CONFIG_HOME:-~/.config}/hpctf/config.toml``;
- the project's file: ``hpctf.toml`` in the current folder or the nearest parent with one.

::

    default = "a100"                # used when no target is named

    [targets.a100]
    partition = "gpu"
    ps_partition = "cpu"            # parameter servers of ps jobs on CPU nodes (a heterogeneous job)
    account = "ml-team"
    gpu_type = "a100"               # --gres=gpu:a100:N
    gpus_per_node = 4               # what each node has: checked, and bounds requests
    modules = ["cuda/12.2", "openmpi/4.1"]
    env_cache = "/shared/hpctf/envs"
    time = "12:00:00"
    sweep_storage = "mysql+pymysql://sweeps@db.example.org/sweeps"  # else a journal file per sweep
    cluster = "alpha"               # multi-cluster sites: sbatch/sacct/squeue/scancel --clusters=alpha

A profile gives defaults: whatever the estimator sets itself wins; lists (modules,
setup) and tables (sbatch_options, environment_variables) are combined, the
estimator's entries last.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import executors
from .errors import HpctfError
from .slurmtime import valid_time
from .validation.container import CONTAINER_RUNTIMES
from .validation.shape import LAUNCHERS

GPU_REQUESTS = ("auto", "gres", "gpus-per-node")
PROJECT_FILE = "hpctf.toml"
# Where Lmod and Environment Modules keep the script that defines `module` in bash.
MODULE_INITS = (
    "/etc/profile.d/lmod.sh",
    "/usr/share/lmod/lmod/init/bash",
    "/etc/profile.d/modules.sh",
    "/usr/share/modules/init/bash",
)


def _sweep_study():
    """hpctf.sweep.study, which owns what a database URL looks like, imported when needed."""
    from .sweep import study

    return study


def _slurm_cluster():
    """hpctf.executors.slurm.cluster, which owns what a cluster's name looks like."""
    from .executors.slurm import cluster

    return cluster


def gres_spec(name: str, gpu_type: str | None, count: int) -> str:
    """A GRES request as Slurm writes it: ``gpu:2``, ``gpu:a100:2``."""
    return ":".join([name, *([gpu_type] if gpu_type else []), str(count)])


@dataclass(frozen=True)
class Target:
    """One site profile. ``None`` and empty mean: no site default."""

    name: str
    source: str = "built-in"  # the file(s) the profile came from
    executor: str = "slurm"  # the name of an executor in hpctf.executors: slurm (sbatch), local (this machine)
    # Scheduling defaults, used where the estimator leaves the field unset.
    partition: str | None = None
    ps_partition: str | None = None  # parameter servers' partition (ps jobs): a heterogeneous job
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    python: str | None = None
    launcher: str | None = None
    pmi: str | None = None
    gpu_type: str | None = None
    container_runtime: str | None = None
    container_image: str | None = None
    # Site facts and conventions.
    gres_name: str = "gpu"  # the GRES name of GPUs in gres.conf
    gpus_per_node: int | None = None  # GPUs each node of the partition has
    gpu_request: str = "auto"  # how the script asks for GPUs: see gpu_request_form()
    env_cache: str | None = None  # where pip/conda environments are built and kept
    tensorflow: str | None = None  # requirement that puts TensorFlow in a pip environment
    templates: str | None = None  # folder of site templates overriding built-in ones
    sweep_storage: str | None = None  # database URL for sweeps' studies (else a journal file in each sweep's folder)
    cluster: str | None = None  # Slurm's multi-cluster set-up: the cluster jobs go to (--clusters); else this one
    share_with_group: str | None = None  # run folders readable by this group (else owner-only)
    trust_group: str | None = None  # env_cache folders this group can write are still used
    # Combined with the estimator's own.
    modules: tuple[str, ...] = ()
    module_paths: tuple[str, ...] = ()  # `module use` folders, before the loads
    container_mounts: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    sbatch_options: Mapping[str, Any] = field(default_factory=dict)
    environment_variables: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, (), {}) and f.name not in ("name",):
                continue
            out[f.name] = (
                list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
            )
        if self.sweep_storage:  # `hpctf targets --json` shows no database password
            out["sweep_storage"] = _sweep_study().masked(self.sweep_storage)
        return out


# One target of the same name per built-in executor: slurm, local.
BUILTIN = {name: Target(name=name, executor=name) for name in executors.names()}

# key -> (type check, what is allowed) for TOML profile tables.
_STR = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
_STRS = (lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v), "a list of non-empty strings")
_TABLE = (lambda v: isinstance(v, dict), "a table (key = value pairs)")
_KEYS: dict[str, tuple] = {
    "executor": (lambda v: v in executors.names(), lambda: " or ".join(map(repr, executors.names()))),
    "partition": _STR,
    "ps_partition": _STR,
    "account": _STR,
    "qos": _STR,
    "python": _STR,
    "time": (valid_time, "a Slurm time such as '30', '1:00:00' or '2-00:00:00'"),
    "launcher": (lambda v: v in LAUNCHERS, " or ".join(map(repr, LAUNCHERS))),
    "pmi": _STR,
    "gpu_type": _STR,
    "container_image": _STR,
    "container_runtime": (lambda v: v in CONTAINER_RUNTIMES, " or ".join(map(repr, CONTAINER_RUNTIMES))),
    "gres_name": _STR,
    "gpus_per_node": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "gpu_request": (lambda v: v in GPU_REQUESTS, " or ".join(map(repr, GPU_REQUESTS))),
    "env_cache": _STR,
    "tensorflow": (
        lambda v: isinstance(v, str),
        "a pip requirement such as 'tensorflow[and-cuda]==2.18.1', or '' for none",
    ),
    "templates": _STR,
    "sweep_storage": (
        lambda v: _sweep_study().is_database_url(v),
        "a database URL such as 'mysql+pymysql://user:password@host/db' or 'postgresql://user@host/db'",
    ),
    "cluster": (
        lambda v: isinstance(v, str) and _slurm_cluster().NAME.match(v) is not None,
        "a Slurm ClusterName as `scontrol show config` prints it: lower-case letters, digits, '_' and '-'",
    ),
    "share_with_group": _STR,
    "trust_group": _STR,
    "modules": _STRS,
    "module_paths": _STRS,
    "container_mounts": _STRS,
    "setup": _STRS,
    "sbatch_options": _TABLE,
    "environment_variables": _TABLE,
}
_PATH_KEYS = ("env_cache", "templates")  # relative paths are relative to their file


# ---------------------------------------------------------------------------------------
# Finding and reading the files
# ---------------------------------------------------------------------------------------


def user_config_file() -> Path:
    if os.environ.get("HPCTF_CONFIG"):
        return Path(os.environ["HPCTF_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "hpctf" / "config.toml"


def project_config_file(start: Path | None = None) -> Path | None:
    folder = (start or Path.cwd()).absolute()
    for candidate in (folder, *folder.parents):
        path = candidate / PROJECT_FILE
        if path.is_file():
            return path
    return None


def config_files() -> list[Path]:
    """The files that define targets, lowest precedence first."""
    files = [p for p in (user_config_file(),) if p.is_file()]
    project = project_config_file()
    if project is not None and project not in files:
        files.append(project)
    return files


@dataclass(frozen=True)
class Config:
    targets: dict[str, Target]
    default: str | None
    files: tuple[Path, ...]


def load_config(files: list[Path] | None = None) -> Config:
    """Every target: the built-ins, then each file's, merged key by key."""
    files = config_files() if files is None else files
    raw: dict[str, dict[str, Any]] = {}
    sources: dict[str, list[str]] = {}
    default = None
    for path in files:
        data = _read_toml(path)
        unknown = set(data) - {"default", "targets"}
        if unknown:
            raise HpctfError(
                f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: 'default' and [targets.NAME] tables"
            )
        if "default" in data:
            if not isinstance(data["default"], str):
                raise HpctfError(f"{path}: default={data['default']!r}: must be a target name")
            default = data["default"]
        tables = data.get("targets", {})
        if not isinstance(tables, dict):
            raise HpctfError(f"{path}: 'targets' must be tables such as [targets.gpu]")
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise HpctfError(f"{path}: targets.{name} must be a table ([targets.{name}])")
            _check_table(path, name, table)
            table = {k: _resolve_path(path, v) if k in _PATH_KEYS else v for k, v in table.items()}
            raw.setdefault(name, {}).update(table)
            sources.setdefault(name, []).append(str(path))

    targets = dict(BUILTIN)
    for name, table in raw.items():
        base = BUILTIN.get(name, Target(name=name))
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        targets[name] = replace(base, source=", ".join(sources[name]), **values)
    if default is not None and default not in targets:
        raise HpctfError(
            f"default={default!r} in {', '.join(map(str, files))}: no such target; "
            f"defined: {', '.join(sorted(targets))}"
        )
    return Config(targets=targets, default=default, files=tuple(files))


def _read_toml(path: Path) -> dict[str, Any]:
    # Imported here: most commands on most machines find no configuration file to read.
    try:  # Python 3.11+
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise HpctfError(f"{path}: not valid TOML: {err}") from None
    except OSError as err:
        raise HpctfError(f"{path}: cannot be read: {err.strerror}") from None


def _check_table(path: Path, name: str, table: dict[str, Any]) -> None:
    problems = []
    for key, value in table.items():
        if key not in _KEYS:
            import difflib

            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(sorted(_KEYS))}"
            problems.append(f"targets.{name}.{key}: unknown key{hint}")
            continue
        check, allowed = _KEYS[key]
        if not check(value):
            problems.append(f"targets.{name}.{key}={value!r}: must be {allowed() if callable(allowed) else allowed}")
    if problems:
        raise HpctfError(f"{path}:\n" + "\n".join(f"  - {p}" for p in problems))


def _resolve_path(config_file: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (config_file.parent / path).absolute())


# ---------------------------------------------------------------------------------------
# Choosing a target and applying it to an estimator
# ---------------------------------------------------------------------------------------


def get_target(name: str | None, config: Config | None = None) -> Target:
    """The target ``name`` names; unnamed: the configured default, else Slurm where
    ``sbatch`` is on PATH, else this machine."""
    config = config or load_config()
    if name is None:
        name = config.default or executors.default_name()
    if name not in config.targets:
        where = (
            f" (read {', '.join(map(str, config.files))})"
            if config.files
            else f" (no config file: {user_config_file()} or {PROJECT_FILE})"
        )
        raise HpctfError(
            f"compute_target={name!r}: unknown target; defined: {', '.join(sorted(config.targets))}{where}"
        )
    return config.targets[name]


# Estimator fields a profile fills in when the estimator leaves them unset.
_DEFAULTED = (
    "partition",
    "account",
    "qos",
    "time",
    "python",
    "launcher",
    "pmi",
    "gpu_type",
    "container_runtime",
    "container_image",
)


def apply_target(spec, target: Target):
    """The estimator with the profile's defaults merged in, validated again.

    Merging is idempotent (applying the same profile twice changes nothing), so a spec
    read back from a run record can be resubmitted. Site-only settings (``setup``,
    ``module_paths``, ``env_cache``, ...) stay on the target and reach the template
    through :func:`hpctf.render.build_context`.
    """
    from .errors import SpecError

    # The estimator's own problems (a field changed since it was built, its entry script
    # deleted since) are reported as such, not as the target's.
    spec.with_changes()
    changes: dict[str, Any] = {"compute_target": target.name}
    for name in _DEFAULTED:
        if getattr(spec, name) is None and getattr(target, name) is not None:
            changes[name] = getattr(target, name)
    if spec.distributed_backend == "ps" and spec.parameter_server_count and spec.ps_partition is None:
        if target.ps_partition is not None:  # the site's CPU nodes for parameter servers
            changes["ps_partition"] = target.ps_partition
    if "gpu_type" in changes and not spec.use_gpu:
        del changes["gpu_type"]  # a profile's GPU type only matters to jobs that use GPUs
    for name in ("modules", "container_mounts"):
        mine = tuple(getattr(spec, name))
        changes[name] = tuple(getattr(target, name)) + tuple(m for m in mine if m not in getattr(target, name))
    for name in ("sbatch_options", "environment_variables"):
        changes[name] = {**getattr(target, name), **getattr(spec, name)}
    try:
        return spec.with_changes(**changes)
    except SpecError as err:
        raise HpctfError(f"target {target.name!r} ({target.source}) does not fit this job: {err}") from None
