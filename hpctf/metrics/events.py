"""Scalars from TensorBoard event files (``tf.summary``, Keras's ``TensorBoard`` callback)
under a run's ``tensorboard/``, read with tensorboard's own record reader.

Not ``EventFileLoader``: it asks ``tensorboard.compat.tf`` which reader to use, and that
imports TensorFlow where it is installed (seconds, on a login node). The reader it falls
back to without TensorFlow (``tensorflow_stub.PyRecordReader_New``) is the one used here,
always. A record cut short (the job is writing the file) ends the file quietly; its rest
is read next time.

A metric is named ``<subfolder>/<tag>`` (Keras: ``train/epoch_loss``), or ``<tag>`` for a
file directly in ``tensorboard/``. Scalars come as ``simple_value`` (TF1) or as a 0-d
tensor whose tag the ``scalars`` plugin claims (TF2's ``tf.summary.scalar``, Keras). The
plugin is named only on a tag's first value in a file, so it is remembered per file.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

from .series import Series

INSTALL_HINT = "pip install tensorboard"

# TensorProto dtype -> (its list field, struct format of one element in tensor_content)
_DTYPES = {1: ("float_val", "<f"), 2: ("double_val", "<d"), 3: ("int_val", "<i"), 9: ("int64_val", "<q")}
_HALF, _BFLOAT16 = 19, 14


def event_files(tensorboard_dir: Path) -> list[Path]:
    """Every event file under ``tensorboard_dir``, by folder, then by name (the name
    starts with the time the writer opened it, so a restarted writer's file comes later)."""
    try:
        found = [p for p in tensorboard_dir.rglob("*tfevents*") if p.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p.parent.as_posix(), p.name))


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def read_events(tensorboard_dir: Path) -> tuple[list[Series], list[str]]:
    """The scalar series under ``tensorboard_dir`` and notes on what was left out."""
    files = event_files(tensorboard_dir)
    if not files:
        return [], []
    if not available():
        return [], [
            f"{len(files)} TensorBoard event file(s) in {tensorboard_dir} skipped: "
            f"the tensorboard package is not installed ({INSTALL_HINT})"
        ]
    by_name: dict[str, Series] = {}
    notes = []
    for path in files:
        folder = path.parent.relative_to(tensorboard_dir).as_posix()
        prefix = "" if folder == "." else folder + "/"
        problem = _read_file(path, prefix, by_name)
        if problem:
            notes.append(problem)
    return [s.settle() for s in by_name.values()], notes


def _read_file(path: Path, prefix: str, by_name: dict[str, Series]) -> str | None:
    """Add the scalars of one event file to ``by_name``; a note if the file is damaged."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    try:
        reader = PyRecordReader_New(str(path))
    except (errors.OpError, OSError) as err:
        return f"{path}: not read ({err})"
    plugins: dict[str, str] = {}  # tag -> the plugin that claimed it in this file
    try:
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                return None
            except errors.DataLossError as err:
                return None if "truncated" in str(err) else f"{path}: read up to a damaged record ({err})"
            event = event_pb2.Event.FromString(reader.record())
            for value in event.summary.value:
                number = _scalar(value, plugins)
                if number is not None:
                    name = prefix + value.tag
                    s = by_name.get(name) or by_name.setdefault(name, Series(name, None))
                    s.steps.append(event.step)
                    s.values.append(number)
                    s.times.append(event.wall_time)
    finally:
        reader.file_handle.close()


def _scalar(value, plugins: dict[str, str]) -> float | None:
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return value.simple_value
    if value.metadata.plugin_data.plugin_name:
        plugins[value.tag] = value.metadata.plugin_data.plugin_name
    if kind != "tensor" or plugins.get(value.tag) != "scalars":
        return None
    return tensor_number(value.tensor)


def tensor_number(tensor) -> float | None:
    """The number in a one-element numeric TensorProto, without numpy; None otherwise."""
    if any(dim.size != 1 for dim in tensor.tensor_shape.dim):
        return None
    if tensor.dtype in (_HALF, _BFLOAT16):
        if tensor.tensor_content:
            (bits,) = struct.unpack("<H", tensor.tensor_content[:2])
        elif tensor.half_val:
            bits = tensor.half_val[0]
        else:
            return None
        if tensor.dtype == _HALF:
            return struct.unpack("<e", struct.pack("<H", bits))[0]
        return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
    if tensor.dtype not in _DTYPES:
        return None
    field, fmt = _DTYPES[tensor.dtype]
    if tensor.tensor_content:
        return float(struct.unpack_from(fmt, tensor.tensor_content)[0])
    listed = getattr(tensor, field)
    return float(listed[0]) if listed else None
