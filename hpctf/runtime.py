"""``python -m hpctf.runtime``: the start of every task, and the API of training scripts.

The code lives in :mod:`hpctf.job` (what runs on the compute nodes, standard library
only); this module is the public name that rendered job scripts run and that training
scripts import::

    srun ... python -m hpctf.runtime [--ps N --workers M --chief] [--bind-gpu] -- python train.py

    from hpctf.runtime import install, should_checkpoint, restart_count

It offers what it always offered, each name loaded from :mod:`hpctf.job` on first use:
a task's start pays only for what the bootstrap needs, a training script only for the
checkpoint API.
"""

import sys

_EXPORTS = {
    "bootstrap": ("USAGE", "main", "parse_arguments", "task_environment"),
    "checkpoint": (
        "CHECKPOINT_SIGNAL_ENV",
        "_checkpoint",
        "checkpoint_signal",
        "install",
        "restart_count",
        "should_checkpoint",
    ),
    "gpus": ("pick_gpu",),
    "metrics": ("log_metric", "log_metrics"),
    "layout": ("TaskLayout", "layout_from_slurm", "tf_config_for_task"),
    "nodelist": ("expand_nodelist", "expand_tasks_per_node", "task_hosts"),
    "process": ("exit_status",),
    "roles": ("ROLE_ORDER", "cluster_roles", "driver_roles"),
    "supervise": ("SERVER_STOP_GRACE_S", "run_supervised", "run_task"),
    "taskenv": ("RuntimeSetupError", "task_local_rank", "task_rank", "task_world_size"),
}
from hpctf import lazy_names  # noqa: E402

__getattr__, __dir__ = lazy_names(
    __name__, {name: f"hpctf.job.{module}" for module, names in _EXPORTS.items() for name in names}
)


if __name__ == "__main__":
    from hpctf.job.bootstrap import main

    sys.exit(main())
