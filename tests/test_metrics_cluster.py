"""Metrics, outputs and TensorBoard on the test cluster, from real TensorFlow jobs.

- a 2-rank Horovod job (two nodes) logs through hpctf.keras.MetricsCallback, after
  Horovod's MetricAverageCallback, and through hpctf.log_metric on every rank;
- a parameter-server job's chief logs through the callback and the API;
- a script that knows nothing of hpctf writes tf.summary scalars only.

`hpctf metrics` must show what each job's own output says it trained; `hpctf tensorboard`
must serve the run (TensorBoard's HTTP API lists it and its values); `--plot` and the
terminal chart are drawn; `job.metrics()` and `job.outputs` work on a fresh, an attached
and an unpickled handle. (tests/test_examples.py draws the chart and the PNG of the single
example's real training, which the README shows.)
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

import pytest

import hpctf
from hpctf.serve import free_port

from .test_tensorboard import get_json, lines_of, port_is_free, wait_for, wait_until
from .training import HPCTF, all_logs, hpctf_env, submit_cli, task_log

pytestmark = [pytest.mark.slurm, pytest.mark.tensorflow]

PROGRAMS = Path(__file__).resolve().parent / "programs"


def hpctf_cli(slurm, home: Path, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([HPCTF, *args], capture_output=True, text=True, env=hpctf_env(slurm, home), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def metrics_rows(slurm, home: Path, job_id: str) -> list[dict]:
    return json.loads(hpctf_cli(slurm, home, "metrics", "--json", job_id))


def series(rows: list[dict], name: str, rank: int | None = 0) -> list[tuple[int, float]]:
    return [(r["step"], r["value"]) for r in rows if r["name"] == name and r["rank"] == rank]


def history(log: str) -> dict[str, list[float]]:
    [line] = [line for line in log.splitlines() if line.startswith("HISTORY ")]
    return json.loads(line[len("HISTORY ") :])


def test_horovod_job_keeps_the_callbacks_and_the_api_metrics(slurm, home):
    shape = ("--backend", "mpi", "--nodes", "2", "--procs-per-node", "1", "--time", "10")
    job_id, logs = submit_cli(slurm, home, *shape, str(PROGRAMS / "metrics_horovod.py"), timeout=600)
    trained = history(task_log(logs, job_id, 0))
    rows = metrics_rows(slurm, home, job_id)
    for name in ("loss", "accuracy"):  # rank 0 logged the averages Keras reported
        assert series(rows, name) == [(epoch, pytest.approx(v, rel=1e-9)) for epoch, v in enumerate(trained[name])]
        assert not series(rows, name, rank=1)
    for rank in (0, 1):  # all_ranks=True: each rank's own rate
        assert [step for step, _ in series(rows, "images_per_second", rank)] == [0, 1, 2, 3]
    table = hpctf_cli(slurm, home, "metrics", job_id)
    assert re.search(rf"^loss\b.*\b{trained['loss'][-1]:.6g}\b", table, re.M), table
    assert "images_per_second [rank 1]" in table and re.search(r"^images_per_second \[rank 0\]\s+max", table, re.M)
    status = hpctf_cli(slurm, home, "status", job_id)
    assert re.search(r"step 3\s+loss=\S+\s+accuracy=\S+\s+images_per_second=", status), status


def test_parameter_server_chief_keeps_its_metrics(slurm, home):
    shape = ("--backend", "ps", "--ps", "1", "--workers", "1", "--chief", "--nodes", "3", "--time", "10")
    job_id, logs = submit_cli(slurm, home, *shape, str(PROGRAMS / "metrics_ps.py"), timeout=600)
    trained = history(task_log(logs, job_id, 0))
    rows = metrics_rows(slurm, home, job_id)
    assert series(rows, "loss") == [(epoch, pytest.approx(v, rel=1e-9)) for epoch, v in enumerate(trained["loss"])]
    assert series(rows, "final_loss") == [(3, pytest.approx(trained["loss"][-1], rel=1e-9))]
    assert {r["rank"] for r in rows} == {0}  # the chief is rank 0; workers and ps never log


def written_scalars(log: str) -> dict[str, list[tuple[int, float]]]:
    scalars: dict[str, list[tuple[int, float]]] = {}
    for tag, step, value in re.findall(r"^SCALAR (\w+) (\d+) (\S+)$", log, re.M):
        scalars.setdefault(tag, []).append((int(step), float(value)))
    return scalars


def use_cluster(patch: pytest.MonkeyPatch, slurm, home: Path) -> None:
    """In-process API calls go to the test cluster and to ``home``: the cluster's SLURM_
    variables only (its env is a whole environment, HPCTF_HOME included, taken when the
    session's first cluster test started), as conftest's `home` fixture does."""
    for key, value in slurm.env.items():
        if key.startswith(("SLURM_", "OMPI_")):
            patch.setenv(key, value)
    patch.setenv("HPCTF_HOME", str(home))


@pytest.fixture(scope="module")
def summary_job(slurm, tmp_path_factory):
    """The tf.summary-only script, submitted from Python (hpctf.submit), finished."""
    home = tmp_path_factory.mktemp("summary") / "hpctf-home"
    with pytest.MonkeyPatch.context() as patch:
        use_cluster(patch, slurm, home)
        job = hpctf.submit(hpctf.TensorFlow(source_directory=str(PROGRAMS), entry_script="summary_only.py", time="10"))
        code = job.result()
        logs = Path(job.paths.folder)
        assert code == 0, all_logs(logs, job.job_id)
        yield home, job, written_scalars(task_log(logs, job.job_id, 0))


def test_tf_summary_scalars_are_metrics_too(slurm, summary_job):
    home, job, written = summary_job
    rows = metrics_rows(slurm, home, job.job_id)
    assert set(written) == {"loss", "accuracy"}
    for tag, points in written.items():  # TensorBoard keeps float32
        assert series(rows, tag, rank=None) == [(s, pytest.approx(v, rel=1e-6)) for s, v in points]


def chart_and_png(slurm, home: Path, job_id: str, metrics: tuple[str, ...], png: Path) -> str:
    """`hpctf metrics JOB --chart -m ... --plot PNG`: the output, after checking that both
    the terminal chart and the PNG show curves."""
    png.unlink(missing_ok=True)
    chosen = [word for name in metrics for word in ("-m", name)]
    chart = hpctf_cli(slurm, home, "metrics", job_id, "--chart", *chosen, "--plot", str(png))
    assert chart.count("┌") == len(metrics) and all(name in chart for name in metrics), chart  # a chart a metric
    assert sum(chart.count(c) for c in "▀▄▞▚▖▗▘▝") > 10 * len(metrics), chart  # with curves drawn
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    coloured = ((pixels[..., :3].max(axis=-1) - pixels[..., :3].min(axis=-1)) > 0.3).sum()
    assert coloured > 200, "no coloured curve in the PNG"  # matplotlib's lines are coloured, axes grey
    return chart


def test_chart_and_png_of_a_run(slurm, summary_job, tmp_path):
    home, job, written = summary_job
    chart_and_png(slurm, home, job.job_id, ("loss", "accuracy"), tmp_path / "metrics.png")


def test_tensorboard_serves_the_real_run(slurm, summary_job):
    home, job, written = summary_job
    port = free_port()
    served = subprocess.Popen(
        [HPCTF, "tensorboard", job.job_id, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=hpctf_env(slurm, home),
    )
    try:
        wait_for(lines_of(served), "ready")
        url = f"http://127.0.0.1:{port}/"
        run = f"{job.job_id}-summary_only/."

        def listed():
            """TensorBoard lists the run with both tags"""
            tags = get_json(url + "data/plugin/scalars/tags")
            return tags if set(tags.get(run, {})) == {"loss", "accuracy"} else None

        wait_until(listed, timeout_s=90)
        for tag, points in written.items():
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            served_points = [(step, value) for _, step, value in get_json(url + "data/plugin/scalars/scalars?" + query)]
            assert served_points == [(s, pytest.approx(v, rel=1e-6)) for s, v in points]
        served.send_signal(signal.SIGINT)
        assert served.wait(timeout=30) == 0 and port_is_free(port)
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()


def test_handles_fresh_attached_and_unpickled_read_metrics_and_outputs(slurm, summary_job, monkeypatch):
    home, job, written = summary_job
    use_cluster(monkeypatch, slurm, home)
    expected = sorted((r.name, r.step, r.value) for r in job.metrics(as_frame=False))
    assert len(expected) == 50 and {name for name, _, _ in expected} == {"loss", "accuracy"}
    for handle in (hpctf.attach(job.job_id), pickle.loads(pickle.dumps(job))):
        assert sorted((r.name, r.step, r.value) for r in handle.metrics(as_frame=False)) == expected
        assert (handle.outputs / "summary.txt").read_text() == "25 steps of loss and accuracy\n"
    frame = job.metrics()
    assert list(frame.columns) == ["name", "step", "value", "rank", "time"] and len(frame) == 50
    listed = json.loads(hpctf_cli(slurm, home, "outputs", job.job_id, "--json"))
    assert [f["path"] for f in listed["files"]] == ["summary.txt"] and listed["folder"] == str(job.outputs)
    copy = home.parent / "copied"
    hpctf_cli(slurm, home, "outputs", job.job_id, "--copy", str(copy))
    assert (copy / "summary.txt").read_text() == "25 steps of loss and accuracy\n"
    shutil.rmtree(copy)
