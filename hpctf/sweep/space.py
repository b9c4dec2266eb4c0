"""A sweep's parameter space: ``--param 'lr=loguniform(1e-4,1e-1)'`` and TOML tables.

The distributions carry Azure ML HyperDrive's names, with the bounds written as values
(Optuna's reading): ``loguniform(1e-4, 1e-1)`` draws between 1e-4 and 0.1, where
HyperDrive took the exponents.

==========================  ========================================================
``choice(a, b, ...)``       one of the options (numbers or strings)
``uniform(low, high)``      a float in [low, high]
``loguniform(low, high)``   a float in [low, high] whose logarithm is uniform (low > 0)
``quniform(low, high, q)``  ``round(uniform(low, high) / q) * q``
``randint(upper)``          an integer in [0, upper) (``randint(low, upper)``: [low, upper))
``normal(mu, sigma)``       a float drawn from N(mu, sigma)
==========================  ========================================================

A parameter reaches the entry script as ``--NAME VALUE`` (a name given with its dashes,
``-l`` or ``--lr``, is kept as it is), like the estimator's ``script_params``. Every
problem is a :class:`~hpctf.errors.SpecError` naming the parameter.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Problem, SpecError

ARITY = {  # distribution -> how many arguments it takes
    "choice": (1, None),
    "uniform": (2, 2),
    "loguniform": (2, 2),
    "quniform": (3, 3),
    "randint": (1, 2),
    "normal": (2, 2),
}
_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.S)
_NAME = re.compile(r"^(-{1,2})?[A-Za-z_][A-Za-z0-9_-]*\Z")
MAX_GRID = 100_000


@dataclass(frozen=True)
class Param:
    """One parameter: its name as written, its distribution and the distribution's
    arguments (for ``choice``, the options)."""

    name: str
    kind: str
    args: tuple

    @property
    def flag(self) -> str:
        """The option the entry script gets: ``--lr`` for ``lr``, ``-l`` for ``-l``."""
        return self.name if self.name.startswith("-") else f"--{self.name}"

    @property
    def grid(self) -> tuple | None:
        """Every value a grid visits, or None where there are infinitely many."""
        if self.kind == "choice":
            return self.args
        if self.kind == "randint":
            low, upper = self.args if len(self.args) == 2 else (0, self.args[0])
            return tuple(range(low, upper))
        if self.kind == "quniform":
            low, high, q = self.args
            first, last = math.ceil(low / q - 1e-9), math.floor(high / q + 1e-9)
            return tuple(round(k * q, 12) for k in range(first, last + 1))
        return None

    def __str__(self) -> str:
        return f"{self.name}={self.kind}({', '.join(map(repr, self.args))})"


def parse_param(text: Any, field: str = "param") -> Param:
    """``'lr=loguniform(1e-4,1e-1)'`` as a :class:`Param`; SpecError naming it otherwise."""
    if not isinstance(text, str) or "=" not in text:
        raise SpecError([Problem(field, text, "must be NAME=DISTRIBUTION(ARGS), such as 'lr=loguniform(1e-4,1e-1)'")])
    name, _, spec = text.partition("=")
    return make_param(name.strip(), spec, f"{field} {name.strip()!r}" if name.strip() else field)


def make_param(name: str, spec: Any, field: str) -> Param:
    """A :class:`Param` from a name and its distribution, written ``'choice(1, 2)'`` or as
    a list (a choice)."""
    if not _NAME.match(name or ""):
        raise SpecError(
            [
                Problem(
                    field,
                    name,
                    "the name must be an option of the entry script: letters, digits, '_' and '-', "
                    "such as 'lr' or '--batch-size'",
                )
            ]
        )
    if isinstance(spec, (list, tuple)):
        kind, args = "choice", tuple(spec)
    else:
        kind, args = _split(spec, field)
    problem = _check(kind, args)
    if problem:
        raise SpecError([Problem(field, spec, problem)])
    return Param(name, kind, args)


def _split(spec: Any, field: str) -> tuple[str, tuple]:
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if not match:
        raise SpecError(
            [Problem(field, spec, f"must be a distribution such as 'uniform(0.1, 0.9)': {', '.join(ARITY)}")]
        )
    kind, inner = match.groups()
    if kind not in ARITY:
        raise SpecError([Problem(field, spec, f"{kind!r} is not a distribution; known: {', '.join(ARITY)}")])
    try:  # literals only: numbers and quoted strings, never code
        args = ast.literal_eval(f"({inner},)") if inner.strip() else ()
    except (ValueError, SyntaxError):
        raise SpecError([Problem(field, spec, "the arguments must be numbers or quoted strings")]) from None
    return kind, tuple(args)


def _check(kind: str, args: tuple) -> str | None:
    """What is wrong with ``kind(args)``, or None."""
    least, most = ARITY[kind]
    if len(args) < least or (most is not None and len(args) > most):
        wanted = f"{least}" if least == most else (f"at least {least}" if most is None else f"{least} or {most}")
        return f"{kind} takes {wanted} argument(s), not {len(args)}"
    if kind == "choice":
        if not all(isinstance(a, (int, float, str)) and not isinstance(a, bool) for a in args):
            return "choice options must be numbers or strings"
        if len(set(args)) != len(args):
            return "choice options must differ"
        return None
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args):
        return f"{kind} takes finite numbers"
    if kind == "randint":
        low, upper = args if len(args) == 2 else (0, args[0])
        if not all(isinstance(a, int) for a in args):
            return "randint takes integers"
        return None if low < upper else f"the range is empty: {low} >= {upper}"
    if kind == "normal":
        return None if args[1] > 0 else "sigma must be > 0"
    low, high = args[0], args[1]
    if low >= high:
        return f"low must be below high: {low} >= {high}"
    if kind == "loguniform" and low <= 0:
        return "loguniform needs low > 0"
    if kind == "quniform" and not args[2] > 0:
        return "q must be > 0"
    return None


def parse_space(params: list[str] = (), table: Mapping[str, Any] | None = None) -> list[Param]:
    """The space of ``--param`` options and a TOML ``[params]`` table (``lr =
    "loguniform(1e-4, 1e-1)"``, ``batch = [32, 64]``); one parameter a name."""
    space = [parse_param(text) for text in params]
    for name, spec in (table or {}).items():
        space.append(make_param(str(name), spec, f"params.{name}"))
    seen: set[str] = set()
    for p in space:
        if p.flag in seen:
            raise SpecError([Problem(f"param {p.name!r}", str(p), "is given twice")])
        seen.add(p.flag)
    if not space:
        raise SpecError(
            [Problem("param", [], "a sweep needs at least one parameter (--param NAME=DISTRIBUTION(ARGS))")]
        )
    return space


def grid_size(space: list[Param], trials: int | None = None) -> int:
    """How many combinations a grid search of ``space`` runs; SpecError where a parameter
    has no finite grid or the grid exceeds ``trials``."""
    size = 1
    for p in space:
        values = p.grid
        if values is None:
            raise SpecError(
                [
                    Problem(
                        f"param {p.name!r}",
                        str(p),
                        "a grid takes choice, randint or quniform: this has no finite set of values",
                    )
                ]
            )
        size *= len(values)
        if size > MAX_GRID:
            raise SpecError(
                [Problem("param", [str(q) for q in space], f"the grid has more than {MAX_GRID:,} combinations")]
            )
    if trials is not None and size > trials:
        raise SpecError(
            [
                Problem(
                    "trials",
                    trials,
                    f"the grid has {size} combinations: give --trials {size} or more, or shrink the space",
                )
            ]
        )
    return size
