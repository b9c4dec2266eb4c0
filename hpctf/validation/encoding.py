"""Text UTF-8 cannot encode: bytes a command line could not decode arrive as lone
surrogates, and a script holding one could not be written."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from .checks import Checks

if TYPE_CHECKING:
    from ..spec import TensorFlow

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _undecodable(value: Any) -> Any:
    """The first string in ``value`` that UTF-8 cannot encode, or None."""
    if isinstance(value, (str, os.PathLike)):
        return value if _SURROGATE.search(str(value)) else None
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _undecodable(item)
            if found is not None:
                return found
    return None


def check_encoding(c: Checks, spec: TensorFlow) -> None:
    for f in fields(spec):
        bad = _undecodable(getattr(spec, f.name))
        if bad is not None:
            c.add(
                f.name,
                str(bad),
                "must be UTF-8 text: \\udcXX marks a byte that is not UTF-8 (from a file name or the command line)",
            )
