"""``python -m hpctf.sweep.trial``: what a sweep's array element runs around its training.

::

    python -m hpctf.sweep.trial ask SWEEP_DIR INDEX
    python -m hpctf.sweep.trial tell SWEEP_DIR INDEX --run-dir RUN_DIR --exit-code CODE
    python -m hpctf.sweep.trial watch SWEEP_DIR INDEX --run-dir RUN_DIR --pid PID \\
        [--signal TERM] [--grace SECONDS] [--every SECONDS]

``ask`` prints element INDEX's arguments for the entry script (``--lr 0.01 --batch 64``),
each word ended by a NUL byte, so that any value reaches the script as one word
(``mapfile -d '' args < <(...)`` in bash). ``tell`` records how the trial ended: failed
when the training's exit code is not 0, else complete with the last value of the sweep's
metric from the run's logged metrics (``hpctf.log_metric``, or the TensorBoard scalars),
failed too, and said so, when the run never logged it; pruned, whatever the exit code,
when the watcher stopped it (``trials/INDEX.pruned``). ``watch`` runs beside the training
when the sweep stops trials early (:mod:`.prune`): it reports the metric's values as they
are logged and stops the training when the pruner says so; it always exits 0.

The sweep's settings live in ``SWEEP_DIR/sweep.json`` (:class:`~hpctf.sweep.config.SweepConfig`),
written when the sweep is submitted.
"""

from __future__ import annotations

import argparse
import os
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
    answer = config.study(folder).resume(index)
    return script_arguments(answer["params"])


def metric_series(run_dir: Path, metric: str):
    """The values of ``metric`` the run logged (rank 0's files first, then TensorBoard's
    scalars), a :class:`~hpctf.metrics.series.Series`; None where it logged none."""
    from ..metrics.read import read_run

    for series in read_run(run_dir).series:
        if series.name == metric and series.rank in (0, None) and series.values:
            return series
    return None


def final_value(run_dir: Path, metric: str) -> float | None:
    """The last value of ``metric`` the run logged, or None."""
    series = metric_series(run_dir, metric)
    return None if series is None else series.values[-1]


def tell(folder: Path, index: int, run_dir: Path, exit_code: int) -> str:
    """Record element ``index``'s end; the line to print about it."""
    from .prune import catch_up, make_pruner, read_marker

    config = SweepConfig.read(folder)
    study = config.study(folder)
    pruned = read_marker(folder, index)
    if pruned is not None:  # stopped by its watcher: the exit code is ours
        study.tell(index, state="pruned")  # Optuna keeps the last intermediate value as its value
        return f"trial {index}: pruned at step {pruned['step']} ({config.metric}={pruned['value']:.6g})"
    if exit_code != 0:
        study.tell(index, state="fail")
        return f"trial {index}: failed (exit code {exit_code})"
    series = metric_series(run_dir, config.metric)
    if series is None:
        study.tell(index, state="fail")
        return f"trial {index}: failed: the run logged no {config.metric!r} (hpctf.log_metric or a TensorBoard scalar)"
    value = series.values[-1]
    if config.early_stop != "none":
        catch_up(study, index, series.steps, series.values, make_pruner(config.early_stop))
    study.tell(index, value)
    return f"trial {index}: {config.metric}={value:.6g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpctf.sweep.trial", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("ask", "tell", "watch"):
        command = commands.add_parser(name)
        command.add_argument("sweep_dir", type=Path)
        command.add_argument("index", type=int)
        if name in ("tell", "watch"):
            command.add_argument("--run-dir", type=Path, required=True)
        if name == "tell":
            command.add_argument("--exit-code", type=int, required=True)
        if name == "watch":
            _watch_options(command)
    args = parser.parse_args(argv)
    if args.command == "watch":  # never fails: a broken watcher must not fail the training
        from .prune import watch

        watch(args.sweep_dir, args.index, args.run_dir, args.pid, args.signal, args.every, args.grace)
        return 0
    try:
        if args.command == "ask":
            sys.stdout.write("".join(f"{word}\0" for word in ask(args.sweep_dir, args.index)))
        else:
            print(tell(args.sweep_dir, args.index, args.run_dir, args.exit_code), file=sys.stderr)
    except (HpctfError, SpecError) as err:
        print(f"hpctf.sweep.trial: {err}", file=sys.stderr)
        return 2
    return 0


def _watch_options(command: argparse.ArgumentParser) -> None:
    from .prune import EVERY_S, GRACE_S

    command.add_argument("--pid", type=int, required=True, help="the training's process (the launcher)")
    command.add_argument(
        "--signal",
        type=_signal,
        default="TERM",
        help="what PID gets when the trial is pruned: TERM (default), or the job's checkpoint signal (USR1)",
    )
    command.add_argument(
        "--grace",
        type=float,
        default=GRACE_S,
        help=f"seconds PID gets after a signal other than TERM/KILL before TERM (default {GRACE_S})",
    )
    command.add_argument(
        "--every",
        type=float,
        default=float(os.environ.get("HPCTF_WATCH_EVERY_S") or EVERY_S),
        help=f"seconds between reads of the metrics (default $HPCTF_WATCH_EVERY_S, else {EVERY_S:g})",
    )


def _signal(name: str):
    from .prune import signal_number

    try:
        return signal_number(name)
    except HpctfError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


if __name__ == "__main__":
    sys.exit(main())
