"""The code the job runs: source_directory, entry_script, its parameters and arguments,
and the interpreter."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import Checks, control_or_break

if TYPE_CHECKING:
    from ..spec import TensorFlow

_SCALAR = (str, int, float)


def check_program(c: Checks, spec: TensorFlow) -> None:
    source = _check_source(c, spec.source_directory)
    _check_entry(c, spec.entry_script, source)
    _check_script_params(c, spec)
    if c.strings("arguments", spec.arguments):
        for arg in spec.arguments:
            if "\x00" in arg:
                c.add("arguments", arg, "must not contain NUL characters")
    if spec.python is not None and c.text("python", spec.python) and spec.python.startswith("-"):
        # srun, mpirun, env and apptainer would read it as one of their own options.
        c.add(
            "python", spec.python, "must be an interpreter's path or command name, not an option (it starts with '-')"
        )


def _check_source(c: Checks, source: Any) -> Path | None:
    """The source folder, or None where it is not one the entry script can be looked up in."""
    if not isinstance(source, Path):
        c.add("source_directory", source, "must be the path of a folder")
    elif control_or_break(str(source)):
        c.add("source_directory", str(source), "must not contain control characters or line breaks")
    elif not source.is_dir():
        c.add("source_directory", str(source), "must be an existing folder")
    else:
        return source
    return None


def _check_entry(c: Checks, entry: Any, source: Path | None) -> None:
    if not isinstance(entry, str) or not entry.strip() or control_or_break(entry):
        c.add("entry_script", entry, "must be a file name relative to source_directory")
    elif Path(entry).is_absolute() or ".." in Path(entry).parts:
        c.add("entry_script", entry, "must be relative to source_directory, without '..'")
    elif source is not None:
        path = source / entry
        inside = path.resolve().is_relative_to(source.resolve())
        if not inside:
            c.add("entry_script", entry, "must stay inside source_directory (it is a link out of it)")
        elif not path.is_file():
            c.add("entry_script", entry, f"must be an existing file in {source}")


def _check_script_params(c: Checks, spec: TensorFlow) -> None:
    if not c.mapping("script_params", spec.script_params):
        return
    for key, value in spec.script_params.items():
        if not isinstance(key, str) or not key or control_or_break(key):
            c.add("script_params", key, "keys must be non-empty one-line strings such as '--epochs'")
        elif not _param_value_ok(value):
            c.add(
                f"script_params[{key!r}]",
                value,
                "must be a str, int, float, bool, None, or a list of str/int/float (no NUL characters, finite numbers)",
            )


def _param_value_ok(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, _SCALAR):
            return False
        if isinstance(v, str) and "\x00" in v:
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
    return True
