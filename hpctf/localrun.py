"""Former home of the local run's handle: kept so pickles naming ``hpctf.localrun.LocalRun`` load."""

from .executors.local.handle import LocalRun

__all__ = ["LocalRun"]
