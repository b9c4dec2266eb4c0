"""A sweep's study: Optuna over a journal file in the sweep's folder, or a site's
database, one trial per job array element.

By default the study is ``<sweep folder>/study.journal`` (Optuna's journal storage: an
append-only file, locked by a file made with ``open(O_CREAT | O_EXCL)``, which holds on
NFSv3 and later), so every element of the array and the login node see one study, no
database. A site can name a database instead (``storage``: an SQLAlchemy URL such as
``mysql+pymysql://user:password@host/sweeps``, Optuna's RDB storage); one database holds
many sweeps, each its own study, named by the sweep's id.

An element asks for its trial once (:meth:`Study.ask`) and keeps the answer in
``trials/<index>.json``: a requeued element gets the same trial and parameters back.
Each asker builds the study with its own sampler (a sampler is not stored):

- ``grid``: element *i* runs the *i*-th combination (every parameter fixed by Optuna's
  ``PartialFixedSampler``): each combination exactly once, whatever order elements start in;
- ``random``: ``RandomSampler`` seeded with the sweep's seed + *i*: the same draws again;
- ``tpe``: ``TPESampler`` seeded likewise, learning from every trial already told.

``normal(mu, sigma)`` has no Optuna distribution: the study holds its quantile ``u``
(uniform in (0, 1)) and the script gets ``mu + sigma * Phi^-1(u)``, normally distributed
when ``u`` is uniform, and searchable by TPE like any other.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import HpctfError
from .space import Param, grid_size

STUDY_FILE = "study.journal"
JOURNAL_STUDY = "sweep"  # the study's name in its own journal file
TRIALS_DIR = "trials"  # trials/<index>.json (the element's trial) and trials/<index>/ (its run's files)
DIRECTIONS = {"min": "minimize", "max": "maximize"}  # a goal (config.GOALS) in Optuna's words
_EDGE = 1e-6  # normal's quantile stays inside (0, 1)
CONNECT_TIMEOUT = 30  # seconds an element waits for a database that does not answer
# The drivers whose connect() takes connect_timeout (seconds): PyMySQL, mysqlclient,
# MariaDB Connector/Python, and libpq's through psycopg 2 and 3.
_CONNECT_TIMEOUT_DRIVERS = ("pymysql", "mysqldb", "mariadbconnector", "psycopg2", "psycopg")


def distribution(param: Param):
    """The Optuna distribution the study holds for ``param``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind, args = param.kind, param.args
    if kind == "choice":
        return CategoricalDistribution(args)
    if kind == "randint":
        low, upper = args if len(args) == 2 else (0, args[0])
        return IntDistribution(low, upper - 1)
    if kind == "quniform" and all(isinstance(a, int) for a in args):
        return IntDistribution(args[0], args[1], step=args[2])
    if kind == "quniform":
        return FloatDistribution(args[0], args[1], step=args[2])
    if kind == "normal":
        return FloatDistribution(_EDGE, 1 - _EDGE)
    return FloatDistribution(args[0], args[1], log=kind == "loguniform")


def script_value(param: Param, held: Any) -> Any:
    """The value the entry script gets for what the study holds."""
    if param.kind == "normal":
        mu, sigma = param.args
        from statistics import NormalDist  # ~2 ms to import: only normal() parameters need it

        return NormalDist(mu, sigma).inv_cdf(held)
    return held


def is_database_url(value: object) -> bool:
    """Whether ``value`` starts as a database URL does: ``dialect[+driver]://`` (SQLAlchemy
    reads the rest, and says what is wrong with it, when it connects)."""
    return isinstance(value, str) and re.match(r"[A-Za-z]\w*(\+\w+)?://", value) is not None


def masked(url: str) -> str:
    """``url`` with its password, if any, as ``***`` (SQLAlchemy's own URL grammar: the
    password runs from the user name's ``:`` to the first ``@``)."""
    return re.sub(r"^([^:/?#]*://[^:/@]*:)[^@]*@", r"\1***@", url)


class Study:
    """One sweep's study: its folder, space, goal and sampler; ``storage``, a database URL
    (else the journal file in ``folder``) and the study's ``name`` there (else the
    folder's name, the sweep's id)."""

    def __init__(
        self,
        folder: Path,
        space: list[Param],
        goal: str = "min",
        sampler: str = "random",
        seed: int = 0,
        storage: str | None = None,
        name: str | None = None,
    ):
        if goal not in DIRECTIONS:
            raise HpctfError(f"goal={goal!r}: must be 'min' or 'max'")
        from .config import SAMPLERS  # config imports this module

        if sampler not in SAMPLERS:
            raise HpctfError(f"sampler={sampler!r}: must be one of {', '.join(SAMPLERS)}")
        self.folder, self.space, self.goal, self.sampler, self.seed = Path(folder), space, goal, sampler, seed
        if sampler == "grid":
            grid_size(space)  # refuses a parameter with no finite grid
        self.grid = list(itertools.product(*(p.grid for p in space))) if sampler == "grid" else None
        self.storage = storage
        self.name = JOURNAL_STUDY if storage is None else name or self.folder.name

    def optuna_study(self, index: int = 0, pruner=None):
        """The Optuna study, made if new, with this asker's sampler (element ``index``)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._database_errors():
            return optuna.create_study(
                study_name=self.name,
                storage=self._storage(),
                direction=DIRECTIONS[self.goal],
                sampler=self._sampler(index),
                pruner=pruner,
                load_if_exists=True,
            )

    def _storage(self):
        if self.storage is None:
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            path = str(self.folder / STUDY_FILE)
            return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        return rdb_storage(self.storage)

    @contextlib.contextmanager
    def _database_errors(self):
        """A database that fails mid-way (gone, full, refusing): one line naming it."""
        if self.storage is None:
            yield
            return
        import optuna
        import sqlalchemy.exc

        try:
            yield
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
            raise HpctfError(f"storage={masked(self.storage)!r}: the database failed: {_reason(err)}") from None

    def _sampler(self, index: int):
        import optuna

        seed = self.seed + index
        if self.sampler == "grid":
            if index >= len(self.grid):
                raise HpctfError(f"trial {index}: the grid has only {len(self.grid)} combinations")
            fixed = {p.name: value for p, value in zip(self.space, self.grid[index])}
            with warnings.catch_warnings():  # "experimental" since Optuna 2.4, unchanged since
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.PartialFixedSampler(fixed, optuna.samplers.RandomSampler(seed=seed))
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def ask(self, index: int) -> dict[str, Any]:
        """Element ``index``'s trial: ``{"number": N, "params": {name: value}}``, the same
        on every attempt of the element."""
        kept = self.folder / TRIALS_DIR / f"{index}.json"
        if kept.exists():
            return json.loads(kept.read_text())
        return self._new_trial(index, kept)

    def resume(self, index: int) -> dict[str, Any]:
        """:meth:`ask` at the start of an attempt: where an earlier attempt of the element was
        told failed, a new trial with the same parameters. Slurm's own requeue (``scontrol
        requeue``, preemption with PreemptMode=REQUEUE, a node failure) ends the attempt
        with SIGTERM, so its EXIT trap told the study FAIL, and Optuna never reopens a
        finished trial: the next attempt's end could not be told."""
        answer = self.ask(index)
        study = self.optuna_study(index)
        with self._database_errors():
            found = study._storage.get_trial(
                study._storage.get_trial_id_from_study_id_trial_number(study._study_id, answer["number"])
            )
        if found.state.name != "FAIL":
            return answer
        return self._new_trial(index, self.folder / TRIALS_DIR / f"{index}.json", found.params)

    def _new_trial(self, index: int, kept: Path, held: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new trial for element ``index`` (with ``held``: these parameters), kept in ``kept``."""
        import optuna

        study = self.optuna_study(index)
        if held is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.sampler = optuna.samplers.PartialFixedSampler(held, study.sampler)
        trial = study.ask({p.name: distribution(p) for p in self.space})
        answer = {
            "number": trial.number,
            "params": {p.name: script_value(p, trial.params[p.name]) for p in self.space},
        }
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(answer))
        os.replace(tmp, kept)  # whole, or not there: an element killed here asks again
        return answer

    def tell(self, index: int, value: float | None = None, state: str = "complete") -> None:
        """How element ``index``'s trial ended: ``complete`` with ``value``, ``fail`` or ``pruned``."""
        import optuna

        states = {"complete": optuna.trial.TrialState.COMPLETE, "fail": optuna.trial.TrialState.FAIL}
        states["pruned"] = optuna.trial.TrialState.PRUNED
        if state not in states:
            raise HpctfError(f"state={state!r}: must be one of {', '.join(states)}")
        kept = self.folder / TRIALS_DIR / f"{index}.json"
        if not kept.exists():  # its ask failed or never ran: no trial to tell, none to make
            raise HpctfError(f"trial {index} was never asked: nothing to tell")
        number = json.loads(kept.read_text())["number"]
        study = self.optuna_study(index)
        with self._database_errors():
            try:
                study.tell(number, value if state == "complete" else None, state=states[state])
            except ValueError as err:  # "Cannot tell a COMPLETE trial.": told already
                raise HpctfError(f"trial {index} (study trial {number}) was told already: {err}") from None

    def optuna_trial(self, index: int, pruner=None):
        """Element ``index``'s trial as an Optuna ``Trial``, to ``report`` intermediate values
        to and ask ``should_prune`` (with ``pruner``: not stored by Optuna either)."""
        import optuna

        number = self.ask(index)["number"]
        study = self.optuna_study(index, pruner)
        # Trial wants the storage's id, which a database numbers across studies: ask it.
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        return optuna.trial.Trial(study, trial_id)

    def trials(self) -> list:
        """Every trial of the study (Optuna's FrozenTrial), by number."""
        study = self.optuna_study()
        with self._database_errors():
            return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def rdb_storage(url: str, attempts: int = 5):
    """Optuna's RDB storage over the database at ``url``; HpctfError, naming the URL with its
    password masked, where its driver is missing or the database cannot be reached."""
    try:
        import sqlalchemy
        from optuna.exceptions import StorageInternalError
        from optuna.storages import RDBStorage
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool
    except ImportError as err:
        raise HpctfError(f"storage={masked(url)!r}: a database needs {err.name} (pip install 'hpctf[sweep]')") from None
    shown = masked(url)
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()  # the driver (2.0's name, 1.4's)
    except ImportError as err:
        raise HpctfError(
            f"storage={shown!r}: its database driver {err.name!r} is not installed here "
            "(MySQL/MariaDB: mysql+pymysql://, PyMySQL comes with hpctf[sweep]; PostgreSQL: install psycopg)"
        ) from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise HpctfError(
            f"storage={shown!r}: SQLAlchemy has no database or driver {url.split('://')[0]!r} "
            "(such as postgresql://, mysql+pymysql://, sqlite:///)"
        ) from None
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise HpctfError(
            f"storage={shown!r}: not a database URL: dialect[+driver]://user:password@host[:port]/database"
        ) from None
    # Every array element is a short-lived client: it asks (or tells) and exits. No pool
    # (NullPool): each session opens its connection and closes it, so the server holds
    # at most one connection per element at work, never an idle pool per element (a
    # 1,000-trial sweep would exhaust MariaDB's max_connections, 151 by default), and
    # no pooled connection outlives the server's wait_timeout (no pool_pre_ping needed).
    # A database that does not answer fails the element in 30 s, not after TCP's minutes
    # (unless the URL says otherwise: ?connect_timeout=N).
    engine_kwargs: dict[str, Any] = {"poolclass": NullPool}
    if parsed.get_driver_name() in _CONNECT_TIMEOUT_DRIVERS and "connect_timeout" not in parsed.query:
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    for attempt in range(1, attempts + 1):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as err:
            reason = _reason(err)
            if attempt == attempts or not _raced(err, reason):
                raise HpctfError(f"storage={shown!r}: cannot use the database: {reason}") from None
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _raced(err: Exception, reason: str) -> bool:
    """Whether making Optuna's tables failed only because another element, starting at the
    same moment on a new database, made them or their first row first: MySQL's 1050
    "Table ... already exists" and 1062 "Duplicate entry" (alembic's version row, seen with
    16 elements starting at once), PostgreSQL's "already exists", a deadlock, and MariaDB
    11.6+'s 1020 "Record has changed since last read" (its snapshot isolation, on by default:
    alembic's version row again, seen with 11.8 in Debian 13). Tried again, the tables are
    there and Optuna leaves them be."""
    import sqlalchemy.exc

    if isinstance(err, sqlalchemy.exc.IntegrityError):
        return True
    words = ("already exists", "duplicate", "deadlock", "record has changed since last read")
    return any(w in reason.lower() for w in words)


def _reason(err: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement and help link."""
    while err.__cause__ is not None:  # StorageInternalError from SQLAlchemy's, from the driver's
        err = err.__cause__
    orig = getattr(err, "orig", None) or err
    args = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL, mysqlclient: (code, message)
        return f"{args[1]} (error {args[0]})"
    return " ".join(str(orig).split()) or type(orig).__name__
