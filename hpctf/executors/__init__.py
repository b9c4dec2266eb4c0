"""Executors: one object per place a job runs (Slurm, this machine, ...).

Everything that differs between those places goes through :class:`Executor`; the rest of
hpctf asks :func:`get` for the executor a target or a run record names and never compares
names itself. A new place is one subclass and one :func:`register` call::

    class Mine(Executor):
        name = "mine"
        def start(self, plan): ...
        def handle(self, record): ...

    register(Mine())

Executor modules stay light at import time (no submitit, no TensorFlow): ``hpctf submit``
and ``hpctf render`` import this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HpctfError

OK, MISMATCH, SKIPPED = "ok", "MISMATCH", "skipped"


@dataclass(frozen=True)
class Finding:
    """One line of ``hpctf targets check``: what was checked, its status, what was found."""

    check: str
    status: str  # ok | MISMATCH | skipped
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


class Observation:
    """What a refresh learnt about one run: its state (a :class:`~hpctf.states.JobState`),
    the scheduler's fields (``NodeList``, ``Start``, ``End``) and its restarts (None: not known).
    A plain class: a NamedTuple is built with exec at import, on every command's start."""

    __slots__ = ("state", "info", "restarts")

    def __init__(self, state: Any, info: dict[str, str], restarts: int | None = None):
        self.state = state
        self.info = info
        self.restarts = restarts


class Executor:
    """A place jobs run. Subclasses set ``name`` and implement :meth:`start` and
    :meth:`handle`; every other hook has a default that fits a simple executor."""

    name: str = ""
    runs_here: bool = False  # jobs run on this machine ("Submitted job 7 on this machine")
    polls_queue: bool = False  # pending() asks a queue why a job waits
    can_requeue: bool = False  # the place restarts a job that asks for requeue
    runs_arrays: bool = False  # the place runs job arrays (sweeps)
    cancels_elements: bool = False  # one element of an array can be cancelled alone (its own id)

    # -- submitting --------------------------------------------------------------------
    def command(self, script: Path, cluster: str | None = None) -> list[str]:
        """The command that starts the job script (shown by ``--dry-run``); ``cluster``: the
        one a site profile names (Slurm's multi-cluster set-up)."""
        return ["bash", str(script)]

    def adapt(self, spec, target, sweep=None):
        """The spec as it runs here: refuse what cannot run (HpctfError), fill in what the
        place decides (free ports ...); ``sweep``: the checked SweepConfig of a sweep."""
        return spec

    def start(self, plan) -> str:
        """Start the job of a :class:`~hpctf.submission.SubmitPlan` whose run folder is
        written; its job id."""
        raise NotImplementedError

    # -- tracking ----------------------------------------------------------------------
    def handle(self, record):
        """The submitit-style handle of a recorded run (state, wait, logs, cancel ...)."""
        raise NotImplementedError

    def update(self, records: list) -> None:
        """Ask the place about all of ``records`` at once (one scheduler call)."""

    def observe(self, record, job) -> Observation | None:
        """What ``job`` (the handle of ``record``) says now; None: not known yet, the
        record is left as it is."""
        return Observation(job.state, {}, None)

    def settled(self, records: list) -> None:
        """After a refresh saved ``records``: note what only the place knows now."""

    def cancel(self, record) -> None:
        self.handle(record).cancel()

    def elements(self, record) -> dict[int, dict[str, str]]:
        """A sweep's elements as the place knows them now, by index: the scheduler's fields
        (``State``, ``Start``, ``End``, ``ExitCode``); after :meth:`update` where it has one."""
        return {}

    def pending(self, record):
        """A :class:`~hpctf.executors.slurm.watch.QueueInfo` for a waiting job, or None (no queue to ask)."""
        return None

    # -- clusters: one home on several clusters, whose job ids collide ------------------
    def cluster(self) -> str:
        """The cluster a run submitted here now goes to, recorded with it (Slurm: its
        ``ClusterName``); by default the executor's name (``local``)."""
        return self.name

    def reachable(self, record) -> bool:
        """Whether this machine can ask about ``record``'s job (a run of another cluster
        cannot be: looking up its id here would find this cluster's job of that id)."""
        return True

    # -- checking ----------------------------------------------------------------------
    def check_target(self, target) -> list:
        """``hpctf targets check``: findings comparing ``target`` with the place."""
        return [Finding("executor", SKIPPED, f"the {self.name} executor has no checks")]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


_EXECUTORS: dict[str, Executor] = {}

# The built-ins, in this order ("'slurm' or 'local'"): their modules are imported the first
# time one is asked for, since `hpctf render` needs their names only (a target's executor).
BUILTIN: dict[str, tuple[str, str]] = {"slurm": (".slurm", "SlurmExecutor"), "local": (".local", "LocalExecutor")}


def register(executor: Executor) -> Executor:
    """Make ``executor`` available to targets as ``executor = "<its name>"``."""
    if not executor.name:
        raise ValueError(f"{executor!r} has no name")
    _EXECUTORS[executor.name] = executor
    return executor


def unregister(name: str) -> None:
    _EXECUTORS.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*BUILTIN, *_EXECUTORS]))


def get(name: str) -> Executor:
    """The executor called ``name`` (a target's ``executor``, a run record's ``target``)."""
    if name not in _EXECUTORS and name in BUILTIN:
        import importlib

        module, cls = BUILTIN[name]
        register(getattr(importlib.import_module(module, __name__), cls)())
    try:
        return _EXECUTORS[name]
    except KeyError:
        known = " or ".join(map(repr, names()))
        raise HpctfError(f"no executor {name!r}: hpctf knows {known}") from None


def default_name() -> str:
    """Where jobs run when nothing says: Slurm where ``sbatch`` is on PATH, else this machine."""
    import shutil

    return "slurm" if shutil.which("sbatch") else "local"


def for_record(record) -> Executor:
    return get(record.target)


def check_target(target) -> list[Finding]:
    """Every finding about ``target``, from its executor (Slurm: :mod:`hpctf.executors.slurm.check`)."""
    return get(target.executor).check_target(target)
