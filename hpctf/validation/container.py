"""Containers: the image, the runtime, extra mounts, and what a container rules out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .checks import Checks, control_or_break, shown

if TYPE_CHECKING:
    from ..spec import TensorFlow

CONTAINER_RUNTIMES = ("apptainer", "singularity", "pyxis")


def check_container(c: Checks, spec: TensorFlow) -> None:
    if spec.container_runtime is not None and spec.container_runtime not in CONTAINER_RUNTIMES:
        c.add(
            "container_runtime",
            spec.container_runtime,
            "must be 'apptainer', 'singularity' or 'pyxis' (srun --container-image)",
        )
    _check_image(c, spec)
    if c.strings("container_mounts", spec.container_mounts):
        for mount in spec.container_mounts:
            # Both apptainer --bind and pyxis --container-mounts take comma-separated lists.
            if not mount or control_or_break(mount) or "," in mount or not mount.startswith("/"):
                c.add(
                    "container_mounts",
                    mount,
                    "each entry must be 'SRC[:DST[:ro]]' with absolute paths, no commas or line breaks",
                )
    if spec.container_mounts and spec.container_image is None:
        c.add("container_mounts", shown(spec.container_mounts), "need container_image")
    if spec.container_image is not None:
        _check_inside(c, spec)


def _check_image(c: Checks, spec: TensorFlow) -> None:
    if not c.text("container_image", spec.container_image) or spec.container_image is None:
        return
    c.no_backslash("container_image", spec.container_image)
    if spec.container_image.startswith("-"):
        # `apptainer exec ... IMAGE` would read it as one of its own options.
        c.add(
            "container_image",
            spec.container_image,
            (
                "must be an image path or URI such as 'docker://tensorflow/tensorflow:2.18.0', "
                "not an option (it starts with '-')"
            ),
        )


def _check_inside(c: Checks, spec: TensorFlow) -> None:
    """What the tasks starting inside container_image rules out."""
    if isinstance(spec.python, str) and "=" in spec.python:
        c.add(
            "python",
            spec.python,
            (
                "must not contain '=' with container_image: tasks start as `env PYTHONPATH=... PYTHON ...`, "
                "and env reads NAME=VALUE as a variable"
            ),
        )
    if spec.container == "pyxis" and spec.distributed_backend == "mpi" and spec.launcher == "mpirun":
        c.add(
            "launcher",
            spec.launcher,
            (
                "must be 'srun' with container_runtime='pyxis': "
                "Pyxis starts containers from srun's tasks, not from mpirun's"
            ),
        )
    for name in ("pip_packages", "conda_packages"):
        if getattr(spec, name):
            c.add(
                name,
                shown(getattr(spec, name)),
                "cannot be combined with container_image: install the packages in the image",
            )
