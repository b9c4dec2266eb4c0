"""Former home of the Slurm watcher and handle: kept so pickles naming ``hpctf.tracking.SlurmRun`` load."""

from .executors.slurm.watch import ClusterWatcher, QueueInfo, SlurmRun

__all__ = ["ClusterWatcher", "QueueInfo", "SlurmRun"]
