"""The run history: one SQLite file under the user's data folder.

Several ``hpctf`` processes may write at once (a notebook and a shell, or twenty submits
in a loop): SQLite's locking plus a busy timeout makes each insert/update atomic. The
default rollback journal is used, not WAL: WAL needs shared memory between processes,
which network file systems (where home directories live on clusters) do not give. A row
is written only after ``sbatch`` accepted the job, in one statement, so there is never a
half-written record.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import HpctfError
from .runpaths import REGISTRY_FILE, registry_file


def hpctf_home() -> Path:
    """``$HPCTF_HOME``, else ``$XDG_DATA_HOME/hpctf``, else ``~/.local/share/hpctf``.

    Runs (code snapshots and logs) live here too, so on a cluster it must be on a file
    system the compute nodes see -- the home directory usually is.
    """
    if os.environ.get("HPCTF_HOME"):
        return Path(os.environ["HPCTF_HOME"]).expanduser().absolute()
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "hpctf"


@dataclass
class RunRecord:
    job_id: str
    target: str
    name: str
    backend: str
    shape: str
    run_dir: str
    log_dir: str
    command: str
    submitted: float
    state: str = "PENDING"
    exit_code: int | None = None
    started: float | None = None
    ended: float | None = None
    nodes: str | None = None
    spec: str = "{}"  # the estimator as JSON
    restarts: int = 0  # times Slurm requeued the job (each restart is one more attempt)
    sweep: str | None = None  # a sweep's settings as JSON (hpctf.sweep.config.SweepConfig); None: one run
    cluster: str | None = None  # the cluster it was submitted to (Slurm's ClusterName, "local", "unknown")
    run_id: int | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    @property
    def task_count(self) -> int:
        """Processes the job starts (each has its own log), from the recorded spec; 1 when
        the record cannot say (a row written by hand or by another version)."""
        from .spec import count_tasks

        try:
            return max(1, int(count_tasks(json.loads(self.spec or "{}"))))
        except (ValueError, TypeError, KeyError, AttributeError):
            return 1

    @property
    def array_size(self) -> int | None:
        """A sweep's number of trials (elements of its job array); None for one run."""
        return int(json.loads(self.sweep)["trials"]) if self.sweep else None

    def to_dict(self, with_spec: bool = True) -> dict:
        out = dict(self.__dict__)  # the fields, in order (a plain dataclass)
        del out["spec"], out["sweep"]
        if with_spec:
            out["spec"] = json.loads(self.spec)
        out["sweep"] = json.loads(self.sweep) if self.sweep else None
        if out["sweep"] and out["sweep"].get("storage"):  # a database URL's password is not shown
            from .sweep.study import masked

            out["sweep"]["storage"] = masked(out["sweep"]["storage"])
        out["duration"] = self.duration
        return out


_FIELDS = [f.name for f in fields(RunRecord)]  # the order RunRecord(*values) takes
_COLUMNS = [name for name in _FIELDS if name != "run_id"]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job_id);
CREATE INDEX IF NOT EXISTS runs_submitted ON runs (submitted);
"""


def _private_registry(path: Path) -> None:
    """The registry's folder (hpctf's data folder: tightened where it was left open) and
    the file itself, owner-only before SQLite opens it: SQLite gives its journal the
    database file's mode."""
    from .private import FILE_MODE, make_folder, open_private, private_home, tighten

    if path.name == REGISTRY_FILE:
        private_home(path.parent)
    else:
        make_folder(path.parent)
    if not path.exists():
        try:
            open_private(path, os.O_WRONLY | os.O_CREAT, FILE_MODE).close()
        except OSError:
            return  # sqlite says what is wrong with the folder
    else:
        try:
            tighten(path)
        except OSError:
            pass


class Registry:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else registry_file(hpctf_home())
        _private_registry(self.path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 30000")
        try:
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
        except sqlite3.OperationalError as err:
            raise HpctfError(f"cannot open the run registry {self.path}: {err}") from None

    def _add_missing_columns(self) -> None:
        """A registry written by an older hpctf lacks newer columns (``restarts``): add
        them, with the field's default for the rows already there."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        defaults = {f.name: f.default for f in fields(RunRecord)}
        for column in _COLUMNS:
            if column in have:
                continue
            default = defaults[column]
            literal = f" DEFAULT {default!r}" if isinstance(default, int) and not isinstance(default, bool) else ""
            # The clusters are asked first (scontrol may take a while, or be interrupted):
            # the column and its values are then written in one transaction, so no run is
            # ever left without a cluster by a process that stopped in between.
            clusters = self._clusters_now() if column == "cluster" else {}
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {column}{literal}")
                for target, cluster in clusters.items():
                    self._db.execute(
                        "UPDATE runs SET cluster = ? WHERE cluster IS NULL AND target = ?", (cluster, target)
                    )
            except sqlite3.OperationalError as err:
                self._db.execute("ROLLBACK")
                if "duplicate column" not in str(err):  # another process added it first
                    raise
                continue
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _clusters_now(self) -> dict[str, str]:
        """For runs recorded before hpctf kept clusters: the cluster each target's executor
        answers now (Slurm's ClusterName; ``local``), or ``unknown`` where none answers."""
        from . import executors
        from .executors.slurm.cluster import UNKNOWN

        clusters = {}
        for (target,) in self._db.execute("SELECT DISTINCT target FROM runs").fetchall():
            try:
                clusters[target] = executors.get(target).cluster()
            except HpctfError:
                clusters[target] = UNKNOWN
        return clusters

    def close(self) -> None:
        self._db.close()

    def add(self, record: RunRecord) -> RunRecord:
        values = [getattr(record, c) for c in _COLUMNS]
        cur = self._db.execute(
            f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values
        )
        record.run_id = cur.lastrowid
        return record

    def get(
        self, job_id: str, target: str | None = None, cluster: str | None = None, anywhere: bool = False
    ) -> RunRecord:
        """The latest run with this job id (job ids restart when a cluster is rebuilt) of
        the cluster this machine talks to, or of ``cluster``; clusters that share a home
        number their jobs each (:func:`hpctf.clusters.choose`; ``anywhere``: else another's)."""
        from .clusters import choose

        query = "SELECT * FROM runs WHERE job_id = ?" + (" AND target = ?" if target else "")
        args = (job_id, target) if target else (job_id,)
        rows = [RunRecord(**dict(row)) for row in self._db.execute(query + " ORDER BY run_id DESC", args)]
        if not rows:
            raise HpctfError(f"no run with job id {job_id!r} in {self.path} (see `hpctf ls`)")
        return choose(rows, job_id, cluster, anywhere)

    def update(self, run_id: int, **values: object) -> None:
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"not registry columns: {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        self._db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values.values(), run_id])

    def update_many(self, updates: list[tuple[int, dict[str, object]]]) -> None:
        """Several updates in one transaction (one commit instead of one per run)."""
        if not updates:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for run_id, values in updates:
                self.update(run_id, **values)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def runs(self, limit: int | None = None, unfinished_only: bool = False, specs: bool = True) -> Iterator[RunRecord]:
        """Newest first. ``specs=False``: only unfinished runs carry their spec (a refresh
        needs it), the others ``"{}"``: a listing of 10,000 runs reads a tenth of the bytes."""
        from .states import UNFINISHED

        unfinished = ", ".join("?" * len(UNFINISHED))
        args: list[object] = []
        columns = []
        for name in _FIELDS:
            if name == "spec" and not specs:
                columns.append(f"CASE WHEN state IN ({unfinished}) THEN spec ELSE '{{}}' END")
                args += sorted(UNFINISHED)
            else:
                columns.append(name)
        query = f"SELECT {', '.join(columns)} FROM runs"
        if unfinished_only:
            query += f" WHERE state IN ({', '.join('?' * len(UNFINISHED))})"
            args += sorted(UNFINISHED)
        query += " ORDER BY run_id DESC"
        if limit:
            query += " LIMIT ?"
            args.append(limit)
        cursor = self._db.execute(query, args)
        cursor.row_factory = None  # plain tuples, in RunRecord's field order
        for row in cursor:
            yield RunRecord(*row)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def clusters(self) -> list[str]:
        """Every cluster the history holds runs of."""
        return [row[0] for row in self._db.execute("SELECT DISTINCT cluster FROM runs ORDER BY cluster")]
