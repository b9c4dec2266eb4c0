"""Which GPU a task keeps of those Slurm gave its node."""

from __future__ import annotations

from .taskenv import RuntimeSetupError


def pick_gpu(visible: str | None, slot: int | None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for a task using GPU ``slot`` of its node.

    Slurm sets ``CUDA_VISIBLE_DEVICES`` to every GPU the job holds on the node (with
    ``--gres=gpu:N``, all tasks of a node see the same N); each task keeps one of them.
    """
    if slot is None:
        return ""
    devices = [d for d in (visible or "").split(",") if d.strip()]
    if not devices:
        raise RuntimeSetupError(
            "a GPU was requested but Slurm gave this task no CUDA_VISIBLE_DEVICES "
            "(does the partition's gres.conf declare the GPUs?)"
        )
    if slot >= len(devices):
        raise RuntimeSetupError(
            f"this task needs GPU #{slot} of its node but Slurm gave it {len(devices)} "
            f"({','.join(devices)}): request more GPUs per node (--gres) or place fewer tasks per node"
        )
    return devices[slot]
