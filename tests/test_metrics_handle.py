"""``job.metrics()`` on the run handles: fresh, attached and unpickled, Slurm and local,
as rows or a pandas DataFrame."""

from __future__ import annotations

import math
import pickle
import sys

import pytest

import hpctf
from hpctf import executors
from hpctf.errors import HpctfError
from hpctf.metrics import Row
from hpctf.registry import Registry

from .metricsruns import curve, event_record, line, record_run, write_rank

EXPECTED = [
    Row("loss", 0, 1.0, 0, 1764783600.0),
    Row("loss", 1, 0.5, 0, 1764783601.0),
    Row("loss", 0, math.inf, 1, 1764783600.0),
    Row("train/epoch_loss", 3, 0.25, None, 1764783600.0),
]


@pytest.fixture
def runs(tmp_path):
    """Job 11 on Slurm, job 12 here: two ranks' files and a TensorBoard event file each."""
    home = tmp_path / "home"
    for job, target in (("11", "slurm"), ("12", "local")):
        run_dir = record_run(home, job, target=target)
        write_rank(run_dir, 0, curve("loss", range(2)))
        write_rank(run_dir, 1, line("loss", 0, math.inf))
        (run_dir / "tensorboard" / "train").mkdir(parents=True)
        (run_dir / "tensorboard" / "train" / "events.out.tfevents.1.host").write_bytes(
            event_record(3, "epoch_loss", 0.25)
        )
    return home


def handles(home):
    registry = Registry(home / "registry.sqlite")
    for job in ("11", "12"):
        record = registry.get(job)
        fresh = executors.for_record(record).handle(record)
        attached = hpctf.attach(job, home=home)
        yield job, fresh
        yield job, attached
        yield job, pickle.loads(pickle.dumps(attached))


def test_every_handle_reads_its_run_s_metrics_as_rows(runs):
    kinds = set()
    for job, handle in handles(runs):
        kinds.add(type(handle).__name__)
        assert handle.run_dir.name.endswith(f"-train-{job}")
        assert handle.metrics(as_frame=False) == EXPECTED, (job, handle)
    assert kinds == {"SlurmRun", "LocalRun"}


def test_a_task_s_sub_handle_reads_the_same_run(runs):
    job = hpctf.attach("11", home=runs)
    assert job.task(0).metrics(as_frame=False) == EXPECTED


def test_a_dataframe_where_pandas_is_installed(runs):
    import pandas as pd

    frame = hpctf.attach("12", home=runs).metrics()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["name", "step", "value", "rank", "time"]
    assert [str(t) for t in frame.dtypes] in (
        ["object", "int64", "float64", "Int64", "float64"],
        ["str", "int64", "float64", "Int64", "float64"],  # pandas 3 names strings "str"
    )
    assert frame["name"].tolist() == [row.name for row in EXPECTED]
    assert frame["value"].tolist() == [row.value for row in EXPECTED]
    assert frame["rank"].tolist()[:3] == [0, 0, 1] and frame["rank"].isna().tolist() == [False] * 3 + [True]


def test_without_pandas_rows_and_a_clear_error_for_a_frame(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what find_spec sees where it is not installed
    job = hpctf.attach("11", home=runs)
    assert job.metrics() == EXPECTED
    with pytest.raises(HpctfError, match=r"as_frame=True\) needs pandas, which is not installed: pip install pandas"):
        job.metrics(as_frame=True)


def test_a_run_that_logged_nothing_has_no_rows(tmp_path):
    home = tmp_path / "home"
    record_run(home, "13")
    job = hpctf.attach("13", home=home)
    assert job.metrics(as_frame=False) == [] and len(job.metrics(as_frame=True)) == 0
