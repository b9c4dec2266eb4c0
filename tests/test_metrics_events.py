"""TensorBoard event files in a run's tensorboard/: written by real tf.summary and Keras
(in a subprocess, as a job writes them), by hand record by record (TF1's simple_value, a
file cut mid-record while its writer is at it), and without the tensorboard package."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hpctf.metrics import read_run
from hpctf.metrics.events import tensor_number

from .metricsruns import curve, event_record, write_rank

WRITER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    tb = sys.argv[1]
    with tf.summary.create_file_writer(tb).as_default():  # a file directly in tensorboard/
        for step in range(4):
            tf.summary.scalar("lr", 0.1 / (step + 1), step=step)
        tf.summary.text("notes", "not a scalar", step=0)
        tf.summary.histogram("weights", np.arange(10.0), step=0)
    with tf.summary.create_file_writer(tb + "/custom").as_default():
        for step in range(3):
            tf.summary.scalar("loss", 2.0 - step, step=step)
            tf.summary.scalar("nan", float("nan"), step=step)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(
        x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[tf.keras.callbacks.TensorBoard(log_dir=tb)]
    )
    print(json.dumps(history.history))
    """
)


@pytest.mark.tensorflow
def test_scalars_of_tf_summary_and_keras_are_read_without_tensorflow(tmp_path):
    tb = tmp_path / "tensorboard"
    done = subprocess.run([sys.executable, "-c", WRITER, str(tb)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads(done.stdout.strip().splitlines()[-1])
    write_rank(tmp_path, 0, curve("loss", range(2)))

    reader = "import sys, json; from hpctf.metrics import read_run; run = read_run(sys.argv[1]); " + (
        "print(json.dumps([[s.name, s.rank, s.steps, s.values] for s in run.series] + ['tensorflow' in sys.modules]))"
    )
    read = subprocess.run([sys.executable, "-c", reader, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    *series, tensorflow_imported = json.loads(read.stdout.replace("NaN", "null"))
    assert tensorflow_imported is False
    found = {name: (rank, steps, values) for name, rank, steps, values in series}
    assert found["loss"] == (0, [0, 1], [1.0, 0.5])  # hpctf's own, rank 0
    assert found["lr"][:2] == (None, [0, 1, 2, 3]) and found["lr"][2] == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])
    assert found["custom/loss"] == (None, [0, 1, 2], [2.0, 1.0, 0.0])
    assert found["custom/nan"][2] == [None] * 3  # NaN, as json wrote it back
    assert "notes" not in found and "weights" not in found  # text and histograms are not scalars
    for folder, prefix in (("train", ""), ("validation", "val_")):
        rank, steps, values = found[f"{folder}/epoch_loss"]
        assert rank is None and steps == [0, 1, 2]
        assert values == pytest.approx(history[f"{prefix}loss"], rel=1e-5)
        assert found[f"{folder}/epoch_accuracy"][2] == pytest.approx(history[f"{prefix}accuracy"], rel=1e-5)


# -- event files written record by record ----------------------------------------------------


def test_simple_values_are_read_named_by_their_folder(tmp_path):
    (tmp_path / "tensorboard" / "eval" / "deep").mkdir(parents=True)
    (tmp_path / "tensorboard" / "events.out.tfevents.1.host").write_bytes(event_record(0, "loss", 0.5))
    records = event_record(1, "top1", 0.25) + event_record(2, "top1", 0.75)
    (tmp_path / "tensorboard" / "eval" / "deep" / "events.out.tfevents.1.host").write_bytes(records)
    run = read_run(tmp_path)
    assert [(s.name, s.rank, s.steps, s.values) for s in run.series] == [
        ("loss", None, [0], [0.5]),
        ("eval/deep/top1", None, [1, 2], [0.25, 0.75]),
    ]
    assert run.notes == [] and run.rows()[0].time == 1764783600.0


def test_a_restarted_writer_s_later_file_wins_for_a_repeated_step(tmp_path):
    folder = tmp_path / "tensorboard" / "train"
    folder.mkdir(parents=True)
    (folder / "events.out.tfevents.1700000000.host").write_bytes(
        b"".join(event_record(s, "loss", 1.0) for s in range(3))
    )
    (folder / "events.out.tfevents.1700000500.host").write_bytes(
        event_record(2, "loss", 2.0) + event_record(3, "loss", 3.0)
    )
    (series,) = read_run(tmp_path).series
    assert (series.steps, series.values) == ([0, 1, 2, 3], [1.0, 1.0, 2.0, 3.0])


def test_an_event_file_being_written_is_read_up_to_its_last_whole_record(tmp_path):
    path = tmp_path / "tensorboard" / "events.out.tfevents.1.host"
    path.parent.mkdir(parents=True)
    whole = b"".join(event_record(s, "loss", 1.0 / (s + 1)) for s in range(5))
    last = len(event_record(4, "loss", 0.2))
    for cut in (1, 7, 12, last - 3, last - 1):  # in the length, its crc, the data, the data's crc
        path.write_bytes(whole[: len(whole) - cut])
        run = read_run(tmp_path)
        assert (run.series[0].steps, run.notes) == ([0, 1, 2, 3], []), cut
    with open(path, "ab") as f:  # the writer goes on
        f.write(whole[len(whole) - (last - 1) :])
    assert read_run(tmp_path).series[0].steps == [0, 1, 2, 3, 4]


def test_reading_while_a_writer_appends_sees_whole_records_only(tmp_path):
    path = tmp_path / "tensorboard" / "events.out.tfevents.1.host"
    path.parent.mkdir(parents=True)
    whole = b"".join(event_record(s, "loss", float(s)) for s in range(200))

    def write() -> None:
        with open(path, "wb") as f:
            for start in range(0, len(whole), 37):  # pieces that cut records anywhere
                f.write(whole[start : start + 37])
                f.flush()
                time.sleep(0.0005)

    writer = threading.Thread(target=write)
    writer.start()
    seen = []
    while writer.is_alive():
        run = read_run(tmp_path)
        steps = run.series[0].steps if run.series else []
        assert steps == list(range(len(steps))) and run.notes == []
        seen.append(len(steps))
    writer.join()
    assert read_run(tmp_path).series[0].steps == list(range(200))
    assert len(set(seen)) > 2  # it did read the file half-written, several times


def test_a_damaged_record_ends_its_file_with_a_note(tmp_path):
    path = tmp_path / "tensorboard" / "events.out.tfevents.1.host"
    path.parent.mkdir(parents=True)
    good, bad = event_record(0, "loss", 1.0), bytearray(event_record(1, "loss", 0.5))
    bad[20] ^= 0xFF  # a flipped byte in the data: its crc no longer matches
    path.write_bytes(good + bytes(bad) + event_record(2, "loss", 0.25))
    run = read_run(tmp_path)
    assert run.series[0].steps == [0]
    assert len(run.notes) == 1 and str(path) in run.notes[0] and "damaged record" in run.notes[0]


def test_without_tensorboard_installed_hpctf_s_own_metrics_still_read(tmp_path, monkeypatch):
    write_rank(tmp_path, 0, curve("loss", range(3)))
    (tmp_path / "tensorboard" / "train").mkdir(parents=True)
    (tmp_path / "tensorboard" / "train" / "events.out.tfevents.1.host").write_bytes(event_record(0, "x", 1.0))
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what find_spec sees where it is not installed
    run = read_run(tmp_path)
    assert [s.name for s in run.series] == ["loss"]
    assert run.notes == [
        f"1 TensorBoard event file(s) in {tmp_path / 'tensorboard'} skipped: "
        "the tensorboard package is not installed (pip install tensorboard)"
    ]


def test_one_element_tensors_of_each_float_type_are_numbers():
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2

    def tensor(dtype, dims=(), **fields):
        shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
        return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **fields)

    assert tensor_number(tensor(1, float_val=[0.5])) == 0.5
    assert tensor_number(tensor(2, tensor_content=struct.pack("<d", 0.125))) == 0.125
    assert tensor_number(tensor(9, int64_val=[7])) == 7.0
    assert tensor_number(tensor(19, half_val=[0x3C00])) == 1.0  # float16 1.0
    assert tensor_number(tensor(14, half_val=[0x3FC0])) == 1.5  # bfloat16 1.5
    assert math.isnan(tensor_number(tensor(1, (1,), tensor_content=struct.pack("<f", math.nan))))
    assert tensor_number(tensor(1, (2,), float_val=[1.0, 2.0])) is None  # a vector is not a scalar
    assert tensor_number(tensor(7, string_val=[b"text"])) is None
    assert tensor_number(tensor(1)) is None  # no value at all


def test_reading_events_never_imports_tensorflow(tmp_path):
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1.host").write_bytes(event_record(0, "loss", 1.0))
    code = "import sys; from hpctf.metrics import read_run; read_run(sys.argv[1]); print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    assert Path(tmp_path / "tensorboard").is_dir()
