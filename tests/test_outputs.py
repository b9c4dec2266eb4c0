"""``hpctf outputs`` (list a run's outputs, copy them out) and ``job.outputs`` on the handles."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import hpctf
from hpctf.cli import cli
from hpctf.executors.local.handle import LocalRun
from hpctf.executors.slurm.watch import SlurmRun

from .recorded import private_home, record_run

MODIFIED = 1_700_000_000.0
FILES = {"model.keras": b"k" * 1536, "ckpt/ckpt-1.index": b"i" * 10, "ckpt/ckpt-1.data-00000-of-00001": b"d" * 300}


def outputs(*args: str):
    return CliRunner().invoke(cli, ["outputs", *args])


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    return private_home(tmp_path, monkeypatch)


@pytest.fixture
def run(own_home):
    """Run 4242, whose outputs folder holds :data:`FILES`, all modified at :data:`MODIFIED`."""
    paths = record_run(own_home, "4242", name="mnist")
    for name, data in FILES.items():
        path = paths.outputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MODIFIED, MODIFIED))
    return paths


def test_lists_every_file_with_its_size_and_time(run):
    done = outputs("4242")
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].split() == ["PATH", "SIZE", "MODIFIED"]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(MODIFIED))
    assert [line.split() for line in lines[1:4]] == [
        ["ckpt/ckpt-1.data-00000-of-00001", "300", "B", *stamp.split()],
        ["ckpt/ckpt-1.index", "10", "B", *stamp.split()],
        ["model.keras", "1.5", "KiB", *stamp.split()],
    ]
    assert lines[4] == f"3 file(s), 1.8 KiB, in {run.outputs}"


def test_json_lists_the_same_files(run):
    done = outputs("4242", "--json")
    assert done.exit_code == 0, done.output
    listed = json.loads(done.output)
    assert listed["job_id"] == "4242" and listed["folder"] == str(run.outputs)
    assert {f["path"]: (f["size"], f["modified"]) for f in listed["files"]} == {
        name: (len(data), MODIFIED) for name, data in FILES.items()
    }


def test_copy_keeps_the_tree_and_says_what_it_copied(run, tmp_path):
    dest = tmp_path / "out" / "mnist"
    done = outputs("4242", "--copy", str(dest))
    assert done.exit_code == 0, done.output
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == FILES
    assert sorted(done.output.splitlines()[:-1]) == sorted(str(dest / name) for name in FILES)
    assert done.output.splitlines()[-1] == f"copied 3 file(s), 1.8 KiB, from {run.outputs} to {dest}"
    assert os.stat(dest / "model.keras").st_mtime == MODIFIED  # copied with its time


def test_copy_refuses_to_overwrite_without_force(run, tmp_path):
    dest = tmp_path / "out"
    (dest / "ckpt").mkdir(parents=True)
    (dest / "ckpt" / "ckpt-1.index").write_bytes(b"mine")
    done = outputs("4242", "--copy", str(dest))
    assert done.exit_code == 2
    assert f"1 file(s) already in {dest}: {dest / 'ckpt' / 'ckpt-1.index'}; nothing copied" in done.output
    assert sorted(p.name for p in dest.rglob("*")) == ["ckpt", "ckpt-1.index"]  # nothing else written
    assert (dest / "ckpt" / "ckpt-1.index").read_bytes() == b"mine"

    done = outputs("4242", "--copy", str(dest), "--force")
    assert done.exit_code == 0, done.output
    assert (dest / "ckpt" / "ckpt-1.index").read_bytes() == FILES["ckpt/ckpt-1.index"]
    assert (dest / "model.keras").read_bytes() == FILES["model.keras"]


def test_copy_json_names_the_copies(run, tmp_path):
    done = outputs("4242", "--copy", str(tmp_path / "d"), "--json")
    assert done.exit_code == 0, done.output
    assert sorted(json.loads(done.output)["copied"]) == sorted(str(tmp_path / "d" / name) for name in FILES)


def test_a_run_without_outputs_says_so_and_succeeds(own_home, tmp_path):
    paths = record_run(own_home, "7", name="empty")
    done = outputs("7")
    assert (done.exit_code, done.output) == (0, f"job 7 has no outputs: nothing in {paths.outputs}\n")
    assert json.loads(outputs("7", "--json").output)["files"] == []
    done = outputs("7", "--copy", str(tmp_path / "d"))
    assert done.exit_code == 0 and "nothing copied" in done.output and not (tmp_path / "d").exists()


def test_an_unknown_job_and_force_without_copy_are_refused(run):
    done = outputs("999")
    assert done.exit_code == 2 and "no run with job id '999'" in done.output
    done = outputs("4242", "--force")
    assert done.exit_code == 2 and "--force goes with --copy DEST" in done.output


@pytest.mark.parametrize("target, cls", [("slurm", SlurmRun), ("local", LocalRun)])
def test_job_outputs_on_fresh_attached_and_unpickled_handles(own_home, tmp_path, target, cls):
    # Two tasks (2 nodes x 1): the handle has a sub-job per task, each of which knows the folder too.
    paths = record_run(own_home, "31", target=target, spec=json.dumps({"node_count": 2}))
    fresh = cls(folder=paths.logs, job_id="31", tasks=range(2))
    attached = hpctf.attach("31")
    assert type(attached) is cls
    for job in (fresh, attached, attached.task(1)):
        assert job.outputs == paths.outputs and job.run_dir == paths.run_dir
    blob = tmp_path / "job.pkl"
    blob.write_bytes(pickle.dumps(attached))
    code = f"import pickle; job = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
    code += "print(job.outputs, job.task(1).outputs)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(paths.outputs)] * 2
