"""hpctf.log_metric in the job: the file each rank writes, what it refuses, what it keeps.

Each case runs a fresh interpreter with the variables a job's script exports
(HPCTF_METRICS_DIR, and HPCTF_RANK from the bootstrap), as a training script would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINING = REPO / "tests" / "programs"


def run_in_task(code: str, metrics_dir: Path | None, rank: int = 0, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HPCTF_")}
    if metrics_dir is not None:
        base["HPCTF_METRICS_DIR"] = str(metrics_dir)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**base, "HPCTF_RANK": str(rank), **env},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rank_zero_appends_one_json_line_a_value(tmp_path):
    run_in_task(
        "import hpctf\n"
        "hpctf.log_metric('loss', 0.5)\n"
        "hpctf.log_metric('loss', 0.25)\n"
        "hpctf.log_metric('accuracy', 0.75, step=10)\n"
        "hpctf.log_metrics({'loss': 0.125, 'lr': 3e-4}, step=11)\n"
        "hpctf.log_metric('loss', 1)\n",
        tmp_path,
    )
    rows = lines(tmp_path / "rank-0.jsonl")
    assert [(r["name"], r["step"], r["value"]) for r in rows] == [
        ("loss", 0, 0.5),
        ("loss", 1, 0.25),
        ("accuracy", 10, 0.75),
        ("loss", 11, 0.125),
        ("lr", 11, 3e-4),
        ("loss", 12, 1.0),  # no step: the name's last step + 1
    ]
    assert all(isinstance(r["time"], float) and abs(r["time"] - rows[0]["time"]) < 60 for r in rows)
    assert set(rows[0]) == {"name", "step", "value", "time"}


def test_other_ranks_log_only_when_asked(tmp_path):
    code = "import hpctf\nhpctf.log_metric('loss', 0.5)\nhpctf.log_metric('grad_norm', 2.0, all_ranks=True)\n"
    for rank in (0, 1, 2):
        run_in_task(code, tmp_path, rank=rank)
    assert [r["name"] for r in lines(tmp_path / "rank-0.jsonl")] == ["loss", "grad_norm"]
    for rank in (1, 2):
        assert [r["name"] for r in lines(tmp_path / f"rank-{rank}.jsonl")] == ["grad_norm"]


def test_nan_and_infinities_are_kept_and_read_back(tmp_path):
    run_in_task(
        "import hpctf, math\n"
        "hpctf.log_metrics({'loss': float('nan'), 'up': math.inf, 'down': -math.inf, 'tiny': 5e-324}, step=3)\n",
        tmp_path,
    )
    text = (tmp_path / "rank-0.jsonl").read_text()
    assert '"value":NaN' in text and '"value":Infinity' in text and '"value":-Infinity' in text
    values = {r["name"]: r["value"] for r in lines(tmp_path / "rank-0.jsonl")}
    assert values["loss"] != values["loss"] and values["up"] == float("inf") and values["down"] == float("-inf")
    assert values["tiny"] == 5e-324  # repr: the float round-trips exactly


def test_odd_names_round_trip(tmp_path):
    names = ["val/loss", "λ accuracy", 'say "hi"', "back\\slash", "top-5 acc (%)", "x" * 200]
    run_in_task(f"import hpctf\nfor n in {names!r}:\n    hpctf.log_metric(n, 1.0, step=0)\n", tmp_path)
    assert [r["name"] for r in lines(tmp_path / "rank-0.jsonl")] == names


@pytest.mark.parametrize(
    "call, says",
    [
        ("hpctf.log_metric('loss', 'abc')", "'loss': value 'abc' is not a number: not logged"),
        ("hpctf.log_metric('loss', None)", "'loss': value None is not a number (int, float, or a 0-d array"),
        ("hpctf.log_metric('loss', [1, 2])", "'loss': value [1, 2] is not a number"),
        ("hpctf.log_metric('', 1.0)", "'': a metric name must be a non-empty string: not logged"),
        ("hpctf.log_metric(7, 1.0)", "7: a metric name must be a non-empty string"),
        ("hpctf.log_metric('a\\nb', 1.0)", "'a\\nb': a metric name must not hold control characters or line breaks"),
        ("hpctf.log_metric('x' * 201, 1.0)", "a metric name must be at most 200 characters"),
        ("hpctf.log_metric('loss', 1.0, step=-1)", "'loss': step -1 is not an integer >= 0"),
        ("hpctf.log_metric('loss', 1.0, step=2.5)", "'loss': step 2.5 is not an integer >= 0"),
        ("hpctf.log_metric('loss', 1.0, step=True)", "'loss': step True is not an integer >= 0"),
    ],
)
def test_bad_values_are_refused_with_one_line_and_training_goes_on(tmp_path, call, says):
    done = run_in_task(
        f"import hpctf\n{call}\n{call}\nhpctf.log_metric('ok', 2.0, step=0)\nprint('still training')\n", tmp_path
    )
    assert "still training" in done.stdout and "Traceback" not in done.stderr
    assert done.stderr.count("hpctf.log_metric: ") == 1 and says in done.stderr, done.stderr  # once per name
    assert [(r["name"], r["value"]) for r in lines(tmp_path / "rank-0.jsonl")] == [("ok", 2.0)]


def test_numpy_values_and_steps(tmp_path):
    run_in_task(
        "import hpctf, numpy as np\n"
        "hpctf.log_metric('a', np.float32(0.5), step=np.int64(4))\n"
        "hpctf.log_metric('b', np.array(2.5))\n"
        "hpctf.log_metric('c', np.array([1.0, 2.0]))\n",
        tmp_path,
    )
    rows = lines(tmp_path / "rank-0.jsonl")
    assert [(r["name"], r["step"], r["value"]) for r in rows] == [("a", 4, 0.5), ("b", 0, 2.5)]  # not the 1-d array


def test_a_half_line_left_by_a_dead_task_stays_on_its_own_line(tmp_path):
    (tmp_path / "rank-0.jsonl").write_text('{"name":"loss","step":0,"value":0.5,"time":1.0}\n{"name":"lo')
    run_in_task("import hpctf\nhpctf.log_metric('loss', 0.25, step=1)\n", tmp_path)
    text = (tmp_path / "rank-0.jsonl").read_text().splitlines()
    assert text[1] == '{"name":"lo' and json.loads(text[2])["value"] == 0.25 and len(text) == 3


def test_outside_a_job_nothing_is_kept_and_one_line_says_so(tmp_path):
    done = run_in_task("import hpctf\nhpctf.log_metric('loss', 0.5)\nhpctf.log_metric('loss', 0.4)\n", None)
    assert done.stderr.count("not in an hpctf job ($HPCTF_METRICS_DIR is not set)") == 1, done.stderr
    assert not list(tmp_path.iterdir())


def test_logging_imports_nothing_heavy(tmp_path):
    done = run_in_task(
        "import sys, hpctf\nhpctf.log_metric('loss', 0.5)\n"
        "from hpctf.runtime import log_metrics\nlog_metrics({'a': 1.0})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow', 'keras', 'numpy', 'jinja2', 'click', 'submitit', 'rich', 'json'}))\n",
        tmp_path,
    )
    assert done.stdout.strip() == "[]"
    assert len(lines(tmp_path / "rank-0.jsonl")) == 2


KERAS_FIT = """
import json, os, sys
import numpy as np
import tensorflow as tf
from hpctf.keras import MetricsCallback
if os.environ.get("USE_KERAS_3_PACKAGE"):
    import keras  # Keras 3 itself, whatever tf.keras is
else:
    keras = tf.keras
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = (x.sum(axis=1) > 0).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0,
                    callbacks=[MetricsCallback(every_n_batches=2)])
print("HISTORY", json.dumps({k: [float(v) for v in vs] for k, vs in history.history.items()}))
print("KERAS", type(model).__module__)
"""


@pytest.mark.tensorflow
@pytest.mark.parametrize("legacy, keras_3_package", [("0", False), ("1", False), ("1", True)])
def test_keras_callback_logs_every_epoch_and_every_nth_batch(tmp_path, legacy, keras_3_package):
    extra = {"TF_USE_LEGACY_KERAS": legacy, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if keras_3_package:
        extra["USE_KERAS_3_PACKAGE"] = "1"
    done = run_in_task(KERAS_FIT, tmp_path, **extra)
    history = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("HISTORY "))[8:])
    keras_module = next(line for line in done.stdout.splitlines() if line.startswith("KERAS "))
    assert ("tf_keras" in keras_module) == (legacy == "1" and not keras_3_package), keras_module
    rows = lines(tmp_path / "rank-0.jsonl")
    epochs = {}
    for r in rows:
        if not r["name"].startswith("batch/"):
            epochs.setdefault(r["name"], []).append((r["step"], r["value"]))
    assert set(epochs) == set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, values in history.items():
        assert [s for s, _ in epochs[name]] == [0, 1, 2]
        assert [v for _, v in epochs[name]] == pytest.approx(values, rel=1e-6)
    # 48 training samples / 16 = 3 batches an epoch, 9 in all: batches 0, 2, 4, 6, 8.
    assert sorted({r["step"] for r in rows if r["name"] == "batch/loss"}) == [0, 2, 4, 6, 8]


def test_a_folder_that_cannot_be_written_costs_one_line_not_the_training(tmp_path):
    (tmp_path / "file").write_text("")
    done = run_in_task(
        "import hpctf\nfor i in range(3):\n    hpctf.log_metric('loss', 0.5)\nprint('still training')\n",
        tmp_path / "file" / "metrics",
    )
    assert "still training" in done.stdout and "Traceback" not in done.stderr
    assert done.stderr.count("cannot write to") == 1 and "metrics are no longer kept" in done.stderr
