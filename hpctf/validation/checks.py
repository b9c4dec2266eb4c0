"""The collector every check adds its problems to, and the rules several areas share."""

from __future__ import annotations

import re
from typing import Any

from ..errors import Problem

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LINE_BREAK = re.compile(r"[\r\n]")

# slurmctld refuses longer strings in these fields ("Pathname of a file, directory or other
# parameter too long"): the job name, partition, account, QOS, features and some flags.
SLURM_STRING_LIMIT = 1024


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def control_or_break(value: str) -> bool:
    """Whether ``value`` holds a control character or a line break."""
    return bool(CONTROL.search(value) or LINE_BREAK.search(value))


def shown(value: Any) -> Any:
    """A tuple field as the list the user passed; any other value (of a wrong type) as is."""
    return list(value) if isinstance(value, tuple) else value


class Checks:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, name: str, value: Any, allowed: str) -> None:
        self.problems.append(Problem(name, value, allowed))

    def count(self, name: str, value: Any, minimum: int = 1, optional: bool = False) -> bool:
        if optional and value is None:
            return True
        if not is_int(value) or value < minimum:
            self.add(name, value, f"must be an integer >= {minimum}")
            return False
        return True

    def boolean(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(name, value, "must be True or False")

    def text(self, name: str, value: Any, optional: bool = True, one_line: bool = True) -> bool:
        """A free-form string that will be quoted: no control characters, no line breaks."""
        if value is None and optional:
            return True
        if not isinstance(value, str) or not value:
            self.add(name, value, "must be a non-empty string")
            return False
        if CONTROL.search(value) or (one_line and LINE_BREAK.search(value)):
            self.add(name, value, "must not contain control characters or line breaks")
            return False
        return True

    def pattern(self, name: str, value: Any, regex: re.Pattern, allowed: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not regex.match(value):
            self.add(name, value, allowed)

    def strings(self, name: str, value: Any) -> bool:
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            self.add(name, value, "must be a list of strings")
            return False
        return True

    def mapping(self, name: str, value: Any) -> bool:
        if not isinstance(value, dict):
            self.add(name, value, "must be a dict")
            return False
        return True

    def slurm_length(self, name: str, value: Any) -> None:
        if isinstance(value, str) and len(value) > SLURM_STRING_LIMIT:
            self.add(name, value, f"must be at most {SLURM_STRING_LIMIT} characters (slurmctld refuses longer ones)")

    def no_backslash(self, name: str, value: str) -> None:
        # sbatch reads #SBATCH lines with its own parser, where a backslash escapes the next
        # character even inside quotes: a value could close its quotes and add a flag.
        if "\\" in value:
            self.add(name, value, "must not contain a backslash (sbatch reads it as an escape in #SBATCH lines)")
