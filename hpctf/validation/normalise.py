"""Normalisation: the forms users pass (lists, PathLikes, "none") become one canonical form."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import is_int

if TYPE_CHECKING:
    from ..spec import TensorFlow

_SEQUENCES = (
    "conda_packages",
    "pip_packages",
    "arguments",
    "setup",
    "modules",
    "container_mounts",
    "secret_environment_variables",
)
_MAPPINGS = ("script_params", "environment_variables", "sbatch_options")


def normalise(spec: TensorFlow) -> None:
    def put(name: str, value: Any) -> None:
        object.__setattr__(spec, name, value)

    if isinstance(spec.source_directory, (str, os.PathLike)) and str(spec.source_directory):
        put("source_directory", Path(spec.source_directory).expanduser().absolute())
    for name in _SEQUENCES:
        value = getattr(spec, name)
        if isinstance(value, (list, tuple)):
            put(name, tuple(value))
    for name in _MAPPINGS:
        value = getattr(spec, name)
        if value is None:
            put(name, {})
        elif isinstance(value, Mapping):
            put(name, dict(value))
    if isinstance(spec.distributed_backend, str):
        lowered = spec.distributed_backend.strip().lower()
        put("distributed_backend", None if lowered in ("none", "single", "") else lowered)
    if spec.keras == 3 and not isinstance(spec.keras, bool):  # keras=3 as a number
        put("keras", "3")
    # Asking for GPUs per node means using GPUs (hpctf render --gpus-per-node 4).
    if is_int(spec.gpus_per_node) and spec.gpus_per_node > 0 and spec.use_gpu is False:
        put("use_gpu", True)
