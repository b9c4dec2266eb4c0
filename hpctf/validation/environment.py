"""What the tasks run in: packages, environment variables, Keras, setup lines and modules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .checks import Checks

if TYPE_CHECKING:
    from ..spec import TensorFlow

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_MODULE = re.compile(r"^[A-Za-z0-9_.+\-/@:]+\Z")

# Variables something sets for each task, which a value from --env would break: checked
# by exact name, then by prefix. Everything else may be set, in particular the tuning
# parameters users set per job: Open MPI's OMPI_MCA_*, PMIx's PMIX_MCA_*, PRTE_MCA_*,
# UCX_*, NCCL_*. The Open MPI and PMIx names are what a rank saw under `srun --mpi=pmix`
# and `mpirun` (Open MPI 4.1, PMIx 4) on the test cluster.
_BY_OPEN_MPI = "is set for each rank by Open MPI's launcher (mpirun, or srun through PMIx)"
_BY_PMIX = "is set for each rank by the PMIx server of srun --mpi=pmix or mpirun"
_RESERVED_ENV = {
    "TF_CONFIG": "is written by hpctf for each task (the ps backend's cluster and task)",
    "CUDA_VISIBLE_DEVICES": "is set for each task from the GPUs Slurm gives it (ask with --gpus-per-node)",
    **dict.fromkeys(
        (
            "OMPI_UNIVERSE_SIZE",
            "OMPI_FIRST_RANKS",
            "OMPI_NUM_APP_CTX",
            "OMPI_APP_CTX_NUM_PROCS",
            "OMPI_ARGV",
            "OMPI_COMMAND",
            "OMPI_FILE_LOCATION",
            "OMPI_MCA_ess",
            "OMPI_MCA_ess_base_jobid",
            "OMPI_MCA_ess_base_vpid",
            "OMPI_MCA_ess_base_num_procs",
            "OMPI_MCA_pmix",
            "OMPI_MCA_initial_wdir",
            "OMPI_MCA_orte_app_num",
            "OMPI_MCA_orte_ess_node_rank",
            "OMPI_MCA_orte_ess_num_procs",
            "OMPI_MCA_orte_hnp_uri",
            "OMPI_MCA_orte_local_daemon_uri",
            "OMPI_MCA_orte_jobfam_session_dir",
            "OMPI_MCA_orte_top_session_dir",
            "OMPI_MCA_orte_node_regex",
            "OMPI_MCA_orte_num_nodes",
            "OMPI_MCA_orte_launch",
            "OMPI_MCA_orte_bound_at_launch",
            "OMPI_MCA_orte_precondition_transports",
        ),
        _BY_OPEN_MPI,
    ),
    **dict.fromkeys(
        (
            "PMIX_RANK",
            "PMIX_NAMESPACE",
            "PMIX_ID",
            "PMIX_HOSTNAME",
            "PMIX_VERSION",
            "PMIX_SYSTEM_TMPDIR",
            "PMIX_SECURITY_MODE",
            "PMIX_GDS_MODULE",
            "PMIX_BFROP_BUFFER_TYPE",
            "PMIX_PTL_MODULE",
        ),
        _BY_PMIX,
    ),
}
_RESERVED_ENV_PREFIXES = {
    "SLURM_": "is set by Slurm for the job and each task (SLURM_*)",
    "HPCTF_": "is set by hpctf's job script (HPCTF_*)",
    "OMPI_COMM_WORLD_": _BY_OPEN_MPI,
    "PMIX_SERVER_": _BY_PMIX,
    "PMIX_DSTORE_": _BY_PMIX,
}


def reserved_variable(name: str) -> str | None:
    """Why ``name`` cannot be set with --env (who sets it per task); None if it can."""
    if name in _RESERVED_ENV:
        return _RESERVED_ENV[name]
    return next((why for prefix, why in _RESERVED_ENV_PREFIXES.items() if name.startswith(prefix)), None)


def check_environment(c: Checks, spec: TensorFlow) -> None:
    for name in ("pip_packages", "conda_packages"):
        _check_packages(c, name, getattr(spec, name))
    if c.mapping("environment_variables", spec.environment_variables):
        for key, value in spec.environment_variables.items():
            _check_variable(c, key, value)
    _check_secrets(c, spec)
    _check_keras(c, spec)
    if c.strings("setup", spec.setup):
        for line in spec.setup:
            c.text("setup", line, optional=False)
    if c.strings("modules", spec.modules):
        for module in spec.modules:
            if not _MODULE.match(module) or module.startswith("-"):
                c.add(
                    "modules",
                    module,
                    (
                        "each entry must be a module name such as 'cuda/12.2' or 'openmpi/4.1.5' "
                        "(letters, digits, '_.+-/@:', not starting with '-')"
                    ),
                )


def _check_packages(c: Checks, name: str, value: Any) -> None:
    if not c.strings(name, value):
        return
    for requirement in value:
        if not c.text(name, requirement, optional=False):
            continue
        if requirement.startswith("-") or requirement.strip() != requirement:
            c.add(
                name,
                requirement,
                "each entry must be a package requirement such as 'numpy>=1.24', not an option",
            )


def _check_variable(c: Checks, key: Any, value: Any) -> None:
    if not isinstance(key, str) or not _ENV_NAME.match(key):
        c.add(
            "environment_variables",
            key,
            "names must be shell variable names: letters, digits, '_', not starting with a digit",
        )
    elif reserved_variable(key):
        c.add(
            f"environment_variables[{key!r}]",
            value,
            f"{reserved_variable(key)} and cannot be overridden; tuning parameters such as "
            "OMPI_MCA_*, PMIX_MCA_*, UCX_* and NCCL_* can be set",
        )
    elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
        c.add(f"environment_variables[{key!r}]", value, "must be a string or a number")
    elif isinstance(value, str) and "\x00" in value:
        c.add(f"environment_variables[{key!r}]", value, "must not contain NUL characters")


def _check_secrets(c: Checks, spec: TensorFlow) -> None:
    name = "secret_environment_variables"
    if not c.strings(name, spec.secret_environment_variables):
        return
    plain = spec.environment_variables if isinstance(spec.environment_variables, Mapping) else {}
    for key in spec.secret_environment_variables:
        if not _ENV_NAME.match(key):
            c.add(name, key, "names must be shell variable names: letters, digits, '_', not starting with a digit")
        elif reserved_variable(key):
            c.add(name, key, f"{reserved_variable(key)} and cannot be a secret")
        elif key in plain:
            c.add(name, key, "is also in environment_variables, which writes its value into the script: keep one")
    if len(set(spec.secret_environment_variables)) != len(spec.secret_environment_variables):
        c.add(name, list(spec.secret_environment_variables), "must name each variable once")


def _check_keras(c: Checks, spec: TensorFlow) -> None:
    from ..job.keras_policy import LEGACY_KERAS_ENV, MODES

    if spec.keras not in MODES:
        c.add(
            "keras",
            spec.keras,
            (
                "must be 'auto' (tf-keras for the mpi and ps backends where it is installed), "
                "'legacy' (tf-keras) or '3' (Keras 3)"
            ),
        )
        return
    env = spec.environment_variables if isinstance(spec.environment_variables, Mapping) else {}
    if spec.keras != "auto" and LEGACY_KERAS_ENV in env:
        c.add(
            f"environment_variables[{LEGACY_KERAS_ENV!r}]",
            env[LEGACY_KERAS_ENV],
            f"contradicts keras={spec.keras!r}, which sets {LEGACY_KERAS_ENV} itself: keep one of the two",
        )
