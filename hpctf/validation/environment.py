"""What the tasks run in: packages, environment variables, Keras, setup lines and modules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .checks import Checks

if TYPE_CHECKING:
    from ..spec import TensorFlow

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z0-9_.+\-/@:]+$")
_RESERVED_ENV_PREFIXES = ("SLURM_", "HPCTF_", "OMPI_", "PMIX_")
_RESERVED_ENV = {"TF_CONFIG", "CUDA_VISIBLE_DEVICES"}


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
    elif key in _RESERVED_ENV or key.startswith(_RESERVED_ENV_PREFIXES):
        c.add(
            f"environment_variables[{key!r}]",
            value,
            "is set by Slurm or hpctf per task and cannot be overridden",
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
        elif key in _RESERVED_ENV or key.startswith(_RESERVED_ENV_PREFIXES):
            c.add(name, key, "is set by Slurm or hpctf per task and cannot be a secret")
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
