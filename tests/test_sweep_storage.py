"""A sweep's study in a site's database (issue 18): ``storage`` (a sweep's) or
``sweep_storage`` (a target's) names it by URL, and one database holds many sweeps.

The database tests run against the MariaDB of the test Slurm cluster (tests/slurm/cluster.sh
runs one for slurmdbd): each makes its own database and a user with a password, and drops
them at the end. Askers are separate processes, as the array's elements will be.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from hpctf.errors import HpctfError, SpecError
from hpctf.sweep.config import SweepConfig
from hpctf.sweep.space import parse_space
from hpctf.sweep.study import STUDY_FILE, Study, masked
from hpctf.targets import load_config

PARAMS = ("x=uniform(0, 1)", "n=randint(100)")
PASSWORD = "p@ss:w/rd 1"  # every character a URL must quote


def trial(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hpctf.sweep.trial", *args], capture_output=True, timeout=300)
    assert (done.returncode == 0) == ok, done.stderr.decode()
    return done


def sweep_folder(parent: Path, name: str, storage: str, **settings) -> Path:
    folder = parent / name
    SweepConfig(params=PARAMS, metric="loss", storage=storage, **settings).checked().write(folder)
    return folder


def run_folder(parent: Path, name: str, value: float) -> Path:
    run = parent / name
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "rank-0.jsonl").write_text(json.dumps({"name": "loss", "step": 0, "value": value}) + "\n")
    return run


def one_line_error(done: subprocess.CompletedProcess) -> str:
    said = done.stderr.decode()
    assert said.count("\n") == 1 and "Traceback" not in said, said
    return said.strip()


@pytest.mark.parametrize(
    "url, shown",
    [
        ("mysql+pymysql://sweeps:s3cret@db:3306/sweeps", "mysql+pymysql://sweeps:***@db:3306/sweeps"),
        (f"mysql+pymysql://u:{quote(PASSWORD, safe='')}@db/x?charset=utf8", "mysql+pymysql://u:***@db/x?charset=utf8"),
        ("postgresql://sweeps@db/sweeps", "postgresql://sweeps@db/sweeps"),
        ("postgresql://sweeps:@db/sweeps", "postgresql://sweeps:***@db/sweeps"),
        ("sqlite:////shared/sweeps.db", "sqlite:////shared/sweeps.db"),
        ("my sql://u:s3cret@db/x", "my sql://u:***@db/x"),
    ],
)
def test_a_password_is_never_shown(url, shown):
    assert masked(url) == shown


def test_a_storage_that_is_not_a_url_is_refused_with_its_password_masked():
    with pytest.raises(SpecError) as err:
        SweepConfig(params=PARAMS, metric="loss", trials=4, storage="mysql-pymysql://u:s3cret@db/x").checked()
    assert err.value.fields == ["storage"] and "s3cret" not in str(err.value)
    assert "storage='mysql-pymysql://u:***@db/x': a database URL" in str(err.value)
    assert SweepConfig(params=PARAMS, metric="loss", trials=4, storage="sqlite:///x.db").checked().storage


def test_sweeps_in_one_database_are_studies_named_by_their_folders(tmp_path):
    """SQLite stands in for the site's database here (no server): the same RDB storage."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    a = sweep_folder(tmp_path, "sweep-a", url, trials=3, goal="max")
    b = sweep_folder(tmp_path, "sweep-b", url, trials=3, seed=5)
    drawn = {folder: [SweepConfig.read(folder).study(folder).ask(i) for i in range(3)] for folder in (a, b)}
    assert [t["number"] for t in drawn[a]] == [0, 1, 2] == [t["number"] for t in drawn[b]]
    assert drawn[a] != drawn[b]
    SweepConfig.read(a).study(a).tell(1, 0.5)
    states = {f.name: [t.state.name for t in SweepConfig.read(f).study(f).trials()] for f in (a, b)}
    assert states == {"sweep-a": ["RUNNING", "COMPLETE", "RUNNING"], "sweep-b": ["RUNNING"] * 3}
    assert not (a / STUDY_FILE).exists() and (a / "trials" / "2.json").exists()  # kept for a requeue
    assert SweepConfig.read(a).study(a).ask(2) == drawn[a][2]
    assert Study(tmp_path, parse_space(list(PARAMS))).name == "sweep"  # the journal's study keeps its name


def test_a_missing_driver_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # `import psycopg2` fails, as where it is not installed
    study = Study(tmp_path, parse_space(list(PARAMS)), storage="postgresql+psycopg2://u:s3cret@db/sweeps")
    with pytest.raises(HpctfError) as err:
        study.ask(0)
    assert str(err.value).startswith(
        "storage='postgresql+psycopg2://u:***@db/sweeps': its database driver 'psycopg2' is not installed here"
    )


def test_an_unknown_driver_is_one_line_from_an_element(tmp_path):
    folder = sweep_folder(tmp_path, "sweep", "mysql+nosuch://u:s3cret@db/sweeps", trials=2)
    said = one_line_error(trial("ask", str(folder), "0", ok=False))
    assert said == (
        "hpctf.sweep.trial: storage='mysql+nosuch://u:***@db/sweeps': SQLAlchemy has no database or driver "
        "'mysql+nosuch' (such as postgresql://, mysql+pymysql://, sqlite:///)"
    )


def test_a_target_names_the_sites_database(tmp_path):
    url = "mysql+pymysql://sweeps:s3cret@db.example.org/sweeps"
    (tmp_path / "hpctf.toml").write_text(f'[targets.site]\npartition = "gpu"\nsweep_storage = "{url}"\n')
    target = load_config([tmp_path / "hpctf.toml"]).targets["site"]
    assert target.sweep_storage == url
    assert target.describe()["sweep_storage"] == "mysql+pymysql://sweeps:***@db.example.org/sweeps"
    (tmp_path / "hpctf.toml").write_text('[targets.site]\nsweep_storage = "/shared/sweeps.db"\n')
    with pytest.raises(HpctfError, match=r"targets.site.sweep_storage='/shared/sweeps.db': must be a database URL"):
        load_config([tmp_path / "hpctf.toml"])


# ---------------------------------------------------------------------------------------
# Against a real MariaDB: the test cluster's
# ---------------------------------------------------------------------------------------


@pytest.fixture
def mariadb(slurm):
    """A new database and its own user (with a password) on the lab's MariaDB: its URL."""
    lab = slurm.lab_env.get("HPCTF_LAB", "/tmp/hpctf-lab")

    def sql(statement: str) -> str:
        root = ["mariadb", f"--defaults-file={lab}/etc/my.cnf", "-uroot", "-N", "-B", "-e", statement]
        return subprocess.run(root, capture_output=True, text=True, check=True, timeout=60).stdout.strip()

    name = f"hpctf_sweep_{secrets.token_hex(4)}"
    port = sql("SELECT @@port")
    sql(
        f"CREATE DATABASE {name}; CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
        f"GRANT ALL ON {name}.* TO '{name}'@'127.0.0.1';"
    )
    try:
        yield f"mysql+pymysql://{name}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/{name}"
    finally:
        sql(f"DROP DATABASE IF EXISTS {name}; DROP USER IF EXISTS '{name}'@'127.0.0.1';")


def test_elements_ask_and_tell_through_the_database(mariadb, tmp_path):
    folder = sweep_folder(tmp_path, "sweep-ask-tell", mariadb, trials=3, goal="min", sampler="tpe")
    asked = [trial("ask", str(folder), str(i)).stdout for i in range(3)]
    assert trial("ask", str(folder), "1").stdout == asked[1]  # a requeued element: the same trial
    for index, value in ((0, 0.75), (2, 0.25)):
        run = run_folder(tmp_path, f"run{index}", value)
        said = trial("tell", str(folder), str(index), "--run-dir", str(run), "--exit-code", "0")
        assert said.stderr.decode().strip() == f"trial {index}: loss={value}"
    trial("tell", str(folder), "1", "--run-dir", str(tmp_path), "--exit-code", "1")
    study = SweepConfig.read(folder).study(folder)
    assert [(t.number, t.state.name, t.value) for t in study.trials()] == [
        (0, "COMPLETE", 0.75),
        (1, "FAIL", None),
        (2, "COMPLETE", 0.25),
    ]
    assert study.optuna_study().best_trial.number == 2 and not (folder / STUDY_FILE).exists()


def test_sixteen_elements_asking_at_once_on_a_new_database_get_sixteen_trials(mariadb, tmp_path):
    folder = sweep_folder(tmp_path, "sweep-16", mariadb, trials=16, sampler="tpe")
    askers = [
        subprocess.Popen(
            [sys.executable, "-m", "hpctf.sweep.trial", "ask", str(folder), str(i)], stderr=subprocess.PIPE
        )
        for i in range(16)
    ]
    failed = [p.communicate(timeout=300)[1].decode() for p in askers if p.wait() != 0]
    assert not failed, failed[0]
    numbers = [json.loads((folder / "trials" / f"{i}.json").read_text())["number"] for i in range(16)]
    assert sorted(numbers) == list(range(16))
    assert len(SweepConfig.read(folder).study(folder).trials()) == 16


OPENER = """
import sys, time
from pathlib import Path
from hpctf.sweep.study import rdb_storage
ready, go = Path(sys.argv[2] + ".ready"), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.01)
rdb_storage(sys.argv[1])
"""


def test_sixteen_elements_opening_a_new_database_at_the_same_instant_all_get_in(mariadb, tmp_path):
    """Optuna makes its tables on first use: started together, all but one find a table
    (or alembic's version row) made by another mid-way, and try again."""
    starts = [tmp_path / f"go-{i}" for i in range(16)]
    openers = [
        subprocess.Popen([sys.executable, "-c", OPENER, mariadb, str(go)], stderr=subprocess.PIPE) for go in starts
    ]
    deadline = time.monotonic() + 240
    while not all(go.with_suffix(".ready").exists() for go in starts) and time.monotonic() < deadline:
        time.sleep(0.05)
    for go in starts:
        go.touch()
    failed = [p.communicate(timeout=300)[1].decode() for p in openers if p.wait() != 0]
    assert not failed, failed[0]


def test_two_sweeps_in_one_database_do_not_mix(mariadb, tmp_path):
    import optuna

    a = sweep_folder(tmp_path, "sweep-a", mariadb, trials=3, goal="max")
    b = sweep_folder(tmp_path, "sweep-b", mariadb, trials=2)
    for folder, count in ((a, 3), (b, 2)):
        for index in range(count):
            trial("ask", str(folder), str(index))
    trial("tell", str(a), "0", "--run-dir", str(run_folder(tmp_path, "run-a", 0.5)), "--exit-code", "0")
    trial("tell", str(b), "1", "--run-dir", str(run_folder(tmp_path, "run-b", 0.1)), "--exit-code", "0")
    trials = {f.name: SweepConfig.read(f).study(f).trials() for f in (a, b)}
    assert [(t.number, t.value) for t in trials["sweep-a"]] == [(0, 0.5), (1, None), (2, None)]
    assert [(t.number, t.value) for t in trials["sweep-b"]] == [(0, None), (1, 0.1)]
    assert sorted(optuna.get_all_study_names(mariadb)) == ["sweep-a", "sweep-b"]


def test_a_wrong_password_is_one_line_without_the_password(mariadb, tmp_path):
    user = mariadb.split("://")[1].split(":")[0]
    wrong = mariadb.replace(quote(PASSWORD, safe=""), "not-it")
    folder = sweep_folder(tmp_path, "sweep", wrong, trials=2)
    said = one_line_error(trial("ask", str(folder), "0", ok=False))
    shown = masked(wrong)
    assert said.startswith(f"hpctf.sweep.trial: storage={shown!r}: cannot use the database: Access denied for user")
    assert "not-it" not in said and f"'{user}'" in said and "(error 1045)" in said
    closed_port = mariadb.replace(mariadb.split("@")[1].split("/")[0], "127.0.0.1:1")
    refused = sweep_folder(tmp_path, "refused", closed_port, trials=2)
    said = one_line_error(trial("ask", str(refused), "0", ok=False))
    assert "Connection refused" in said and "(error 2003)" in said and quote(PASSWORD, safe="") not in said
