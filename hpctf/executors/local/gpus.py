"""The GPUs of this machine, for the local target: which a run may have, and the refusal
of a request for more than there are.

Slurm gives a job the GPUs it asked for and sets ``CUDA_VISIBLE_DEVICES`` to them; the
local target does the same with this machine's: the first ``gpus_per_node`` of those this
process may use (its own ``CUDA_VISIBLE_DEVICES`` where set, else every GPU ``nvidia-smi
-L`` lists, else the driver's ``/proc/driver/nvidia/gpus``). A run that asks for none keeps
the environment it was started from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ...errors import HpctfError

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def machine_gpus(environ: Mapping[str, str] = os.environ) -> tuple[list[str], str]:
    """(the GPUs a local run may have, where that was read)."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
        # CUDA stops at the first entry that is not a device (-1 hides them all).
        devices = devices[: next((i for i, d in enumerate(devices) if d.startswith("-")), len(devices))]
        return devices, f"CUDA_VISIBLE_DEVICES={visible!r}"
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        indices = re.findall(r"^GPU (\d+):", out, re.M)
        if indices:
            return indices, "nvidia-smi -L"
    try:
        count = len(list(NVIDIA_PROC.iterdir()))
    except OSError:
        count = 0
    if count:
        return [str(i) for i in range(count)], str(NVIDIA_PROC)
    return [], "no CUDA_VISIBLE_DEVICES, no GPU listed by nvidia-smi, no /proc/driver/nvidia/gpus"


def bind_gpus(wanted: int, target: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The ``wanted`` GPUs a local run gets; an error naming the request and what this
    machine has when it has fewer."""
    if wanted <= 0:
        return []
    devices, source = machine_gpus(environ)
    if len(devices) >= wanted:
        return devices[:wanted]
    has = (
        f"{len(devices)} GPU{'s' if len(devices) != 1 else ''} ({source}: {','.join(devices)})"
        if devices
        else (f"no GPU ({source})")
    )
    fix = (
        f"ask for at most {len(devices)} [--gpus-per-node]"
        if devices
        else "leave out use_gpu/gpus_per_node [--gpus-per-node]"
    )
    raise HpctfError(
        f"gpus_per_node={wanted}: compute_target={target!r} runs jobs on this machine, which has {has}: {fix}"
    )
