"""A sweep's settings: :class:`SweepConfig`, checked once when the sweep is described and
kept in ``<sweep folder>/sweep.json`` for every array element to read.

The names follow Azure ML's HyperDrive: a primary metric and its goal, the sampling
method, ``max_total_runs`` (``trials``), ``max_concurrent_runs`` (``parallel``) and an
early-termination policy (``early_stop``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..errors import HpctfError, Problem, SpecError
from .space import Param, grid_size, parse_space
from .study import is_database_url, masked

CONFIG_FILE = "sweep.json"
GOALS = ("min", "max")
SAMPLERS = ("grid", "random", "tpe")
EARLY_STOPS = ("none", "median", "hyperband")
MAX_TRIALS = 100_000  # Slurm's MaxArraySize is at most 4,000,001; clusters keep it far lower


@dataclass(frozen=True)
class SweepConfig:
    """What every element needs to find its trial: the space (as ``--param`` texts), the
    metric and its goal, the sampler and its seed, the budget, the early-stopping policy
    and, where a site gives one, a database URL for the study (else a journal file in the
    sweep folder)."""

    params: tuple[str, ...]
    metric: str
    goal: str = "min"
    sampler: str = "random"
    seed: int = 0
    trials: int | None = None  # None: a grid's size, else required
    parallel: int | None = None  # None: as many at once as the scheduler runs
    early_stop: str = "none"
    storage: str | None = None  # an SQLAlchemy URL (postgresql://..., mysql+pymysql://...)

    def checked(self) -> SweepConfig:
        """This config with ``trials`` filled in for a grid; SpecError naming every problem."""
        problems: list[Problem] = []
        try:
            space = self.space
        except SpecError as err:
            problems += err.problems
            space = None
        if not isinstance(self.metric, str) or not self.metric.strip():
            problems.append(Problem("metric", self.metric, "the name of a metric the entry script logs"))
        for field, value, allowed in (
            ("goal", self.goal, GOALS),
            ("sampler", self.sampler, SAMPLERS),
            ("early_stop", self.early_stop, EARLY_STOPS),
        ):
            if value not in allowed:
                problems.append(Problem(field, value, f"must be one of {', '.join(allowed)}"))
        for field, value, low, high in (
            ("trials", self.trials, 1, MAX_TRIALS),
            ("parallel", self.parallel, 1, MAX_TRIALS),
        ):
            if value is not None and (not _is_int(value) or not low <= value <= high):
                problems.append(Problem(field, value, f"an integer from {low} to {high:,}"))
        if not _is_int(self.seed) or self.seed < 0:
            problems.append(Problem("seed", self.seed, "an integer >= 0"))
        if self.storage is not None and not is_database_url(self.storage):
            shown = masked(self.storage) if isinstance(self.storage, str) else self.storage
            problems.append(
                Problem(
                    "storage",
                    shown,
                    "a database URL (SQLAlchemy's) such as 'mysql+pymysql://user:password@host/db' "
                    "or 'postgresql://user@host/db', or none for a journal file in the sweep folder",
                )
            )
        trials = self.trials
        if trials is None and self.sampler in SAMPLERS and self.sampler != "grid":
            problems.append(Problem("trials", None, f"how many trials the {self.sampler} search runs (--trials N)"))
        if not problems and space is not None and self.sampler == "grid":
            try:
                size = grid_size(space, trials)
                trials = size if trials is None else min(trials, size)
            except SpecError as err:
                problems += err.problems
        if problems:
            raise SpecError(problems)
        return replace(self, trials=trials)

    @property
    def space(self) -> list[Param]:
        return parse_space(list(self.params))

    @property
    def array(self) -> str:
        """The ``--array`` value: ``0-39%4`` runs elements 0..39, at most 4 at once."""
        last = (self.trials or 1) - 1
        return f"0-{last}" + (f"%{self.parallel}" if self.parallel else "")

    def to_dict(self, masked: bool = False) -> dict:
        """The settings as JSON data; ``masked``: a database URL's password as ``***``."""
        out = {**asdict(self), "params": list(self.params)}
        if masked and self.storage:
            from .study import masked as hide

            out["storage"] = hide(self.storage)
        return out

    def write(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{CONFIG_FILE}.{os.getpid()}"
        # Readable by the user only: a database URL may hold a password, and sweep folders
        # live on file systems others can read.
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, folder / CONFIG_FILE)

    @classmethod
    def read(cls, folder: Path) -> SweepConfig:
        try:
            data = json.loads((Path(folder) / CONFIG_FILE).read_text())
        except (OSError, ValueError) as err:
            raise HpctfError(f"{folder}: not a sweep folder ({CONFIG_FILE}: {err})") from None
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in known}, "params": tuple(data["params"])})

    def study(self, folder: Path):
        """The :class:`~hpctf.sweep.study.Study` of the sweep in ``folder``: in ``storage``
        where given, as the study named by the folder (the sweep's id), else in a journal
        file in the folder."""
        from .study import Study

        folder = Path(folder)
        return Study(folder, self.space, self.goal, self.sampler, self.seed, self.storage, folder.absolute().name)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
