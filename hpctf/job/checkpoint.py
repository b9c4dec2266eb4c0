"""Checkpoint requests: preemption and time limits (requeue=True).

With requeue=True the job script exports HPCTF_CHECKPOINT_SIGNAL=USR1 and, when Slurm
signals it before the time limit (or `scancel --signal=USR1 --batch JOB`), passes the
signal to every task. A training script asks between steps::

    from hpctf.runtime import install, should_checkpoint, restart_count
    install()                   # at start, in the main thread
    ...resume from the latest checkpoint, if any...
    for step in range(start, steps):
        train_step()
        if should_checkpoint():  # the job is about to stop
            save(step); sys.exit(0)

and the job requeues itself; the next attempt resumes from that checkpoint. Standard
library only: no TensorFlow. Users import it as :mod:`hpctf.runtime`, which re-exports it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from .taskenv import CHECKPOINT_SIGNAL_ENV, RuntimeSetupError

_checkpoint = {"installed": False, "requested": False}


def checkpoint_signal(env: Mapping[str, str] | None = None) -> int:
    """The signal that asks for a checkpoint: ``$HPCTF_CHECKPOINT_SIGNAL``, else SIGUSR1."""
    name = (os.environ if env is None else env).get(CHECKPOINT_SIGNAL_ENV) or "USR1"
    number = getattr(signal, "SIG" + name.upper().removeprefix("SIG"), None)
    if not isinstance(number, signal.Signals):
        raise RuntimeSetupError(f"{CHECKPOINT_SIGNAL_ENV}={name!r} is not a signal name such as USR1")
    return number


def install(*signals: int) -> None:
    """From now on, note a checkpoint request instead of dying of it.

    Listens for the checkpoint signal (SIGUSR1) and for ``signals``: pass
    ``signal.SIGTERM`` to save on ``scancel`` and on preemption as well (Slurm's KillWait,
    30 s by default, is then all the time there is). Call it early, from the main thread
    (Python runs signal handlers there); :func:`should_checkpoint` calls it if needed.
    """
    signums = (checkpoint_signal(), *signals)
    for signum in signums:
        signal.signal(signum, _note_checkpoint_request)
    # Python puts its handlers back to the default (for SIGUSR1: terminate) as it shuts
    # down, and shutting down TensorFlow/Horovod takes seconds, while the job script may
    # repeat the request: ignore it from the end of the program on.
    import atexit

    atexit.register(_ignore_at_exit, signums)
    _checkpoint["installed"] = True


def _ignore_at_exit(signums) -> None:
    for signum in signums:
        signal.signal(signum, signal.SIG_IGN)


def _note_checkpoint_request(_signum, _frame) -> None:
    _checkpoint["requested"] = True


def should_checkpoint() -> bool:
    """True once the job has been asked to stop: save a checkpoint, then exit with 0.

    Cheap enough to call after every step (it reads a flag). Under Horovod, ranks see the
    signal at slightly different steps: agree first (an allreduce of the flag with op
    Max), so every rank stops after the same step.
    """
    if not _checkpoint["installed"]:
        install()
    return _checkpoint["requested"]


def restart_count(env: Mapping[str, str] | None = None) -> int:
    """How often Slurm has requeued this job: 0 on the first run (``SLURM_RESTART_COUNT``)."""
    value = (os.environ if env is None else env).get("SLURM_RESTART_COUNT", "")
    return int(value) if value.strip().isdigit() else 0


def start_with_checkpoint_signal_ignored() -> None:
    """Requeue jobs: the command starts with the checkpoint signal ignored (an ignored
    signal stays ignored across exec), so a request that comes before the training calls
    :func:`install` cannot kill it; the job script repeats the signal until tasks stop.
    The signal still reaches the bootstrap, which passes it on
    (:func:`hpctf.job.process.forward_signals`)."""
    if os.environ.get(CHECKPOINT_SIGNAL_ENV):
        signal.signal(checkpoint_signal(), signal.SIG_IGN)
