"""Errors a user can act on: each names the field, the value given and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: str
    value: object
    allowed: str

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.field}={shown}: {self.allowed}"


class SpecError(ValueError):
    """An estimator spec that cannot run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid job spec ({len(self.problems)} {noun}):\n{lines}")

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.problems]


class HpctfError(RuntimeError):
    """Any other failure hpctf reports to the user as one clear message."""
