"""``python -m hpctf.sweep.trial``: what a sweep's array element runs around its training.

::

    python -m hpctf.sweep.trial ask SWEEP_DIR INDEX
    python -m hpctf.sweep.trial tell SWEEP_DIR INDEX --run-dir RUN_DIR --exit-code CODE

``ask`` prints element INDEX's arguments for the entry script (``--lr 0.01 --batch 64``),
each word ended by a NUL byte, so that any value reaches the script as one word
(``mapfile -d '' args < <(...)`` in bash). ``tell`` records how the trial ended: failed
when the training's exit code is not 0, else complete with the last value of the sweep's
metric from the run's logged metrics (``hpctf.log_metric``, or the TensorBoard scalars),
failed too, and said so, when the run never logged it.

The sweep's settings live in ``SWEEP_DIR/sweep.json`` (:class:`~hpctf.sweep.config.SweepConfig`),
written when the sweep is submitted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import HpctfError, SpecError
from .config import SweepConfig


def script_arguments(params: dict) -> list[str]:
    """``{"lr": 0.01, "--batch-size": 64}`` as ``["--lr", "0.01", "--batch-size", "64"]``."""
    words = []
    for name, value in params.items():
        words += [name if name.startswith("-") else f"--{name}", str(value)]
    return words


def ask(folder: Path, index: int) -> list[str]:
    """Element ``index``'s arguments for the entry script."""
    config = SweepConfig.read(folder)
    answer = config.study(folder).ask(index)
    return script_arguments(answer["params"])


def final_value(run_dir: Path, metric: str) -> float | None:
    """The last value of ``metric`` the run logged (rank 0's files first, then
    TensorBoard's scalars), or None."""
    from ..metrics.read import read_run

    for series in read_run(run_dir).series:
        if series.name == metric and series.rank in (0, None) and series.values:
            return series.values[-1]
    return None


def tell(folder: Path, index: int, run_dir: Path, exit_code: int) -> str:
    """Record element ``index``'s end; the line to print about it."""
    config = SweepConfig.read(folder)
    study = config.study(folder)
    if exit_code != 0:
        study.tell(index, state="fail")
        return f"trial {index}: failed (exit code {exit_code})"
    value = final_value(run_dir, config.metric)
    if value is None:
        study.tell(index, state="fail")
        return f"trial {index}: failed: the run logged no {config.metric!r} (hpctf.log_metric or a TensorBoard scalar)"
    study.tell(index, value)
    return f"trial {index}: {config.metric}={value:.6g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpctf.sweep.trial", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("ask", "tell"):
        command = commands.add_parser(name)
        command.add_argument("sweep_dir", type=Path)
        command.add_argument("index", type=int)
        if name == "tell":
            command.add_argument("--run-dir", type=Path, required=True)
            command.add_argument("--exit-code", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "ask":
            sys.stdout.write("".join(f"{word}\0" for word in ask(args.sweep_dir, args.index)))
        else:
            print(tell(args.sweep_dir, args.index, args.run_dir, args.exit_code), file=sys.stderr)
    except (HpctfError, SpecError) as err:
        print(f"hpctf.sweep.trial: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
