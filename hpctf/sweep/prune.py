"""Early stopping: a watcher beside the training reports what the trial logs to the study
as intermediate values, and stops the trial when the sweep's pruner says so.

::

    python -m hpctf.sweep.trial watch SWEEP_DIR INDEX --run-dir RUN_DIR --pid PID \\
        [--signal TERM] [--grace SECONDS] [--every SECONDS]

Every ``--every`` seconds (10) while process PID lives, the values of the sweep's metric
that rank 0 logged since the last round (``metrics/rank-0.jsonl``, read from where the
last round stopped; TensorBoard's event files only while that file has none of the
metric, and only when they changed) are reported to the study, one step at a time, and
the pruner asked after each. On a prune: ``trials/<index>.pruned`` is written (JSON:
``{"step": 4, "value": 0.81, "time": 1764783600.1}``), PID gets the signal (a checkpoint
signal such as USR1 first, if the job asked for one; TERM after ``--grace`` seconds if
PID still lives then), one line goes to stderr, and the watcher exits. ``tell`` then
records the trial as pruned, whatever the training's exit code.

A broken watcher must not fail a training: every error is printed once, the watcher
goes on (or ends), and it always exits 0. Once the training has ended the job script
sends it SIGTERM and waits for it before ``tell``: it stops between rounds, never while
it writes (killed there, it would leave the journal's lock for Optuna to break after
30 s). ``tell`` reports the steps logged
after its last round: a completed trial's every step counts in the medians.

Neither a sampler nor a pruner is stored by Optuna: each process builds the pruner from
the sweep's ``early_stop``, with defaults for short sweeps whose steps are epochs
(``hpctf.keras`` logs the epoch, from 0):

- ``median``: ``MedianPruner(n_startup_trials=3, n_warmup_steps=1)``: a trial is stopped
  when its best value so far is worse than the median of the completed trials at the same
  step, once 3 trials have completed (Optuna's 5 would leave 40 % of a 12-trial sweep
  unprunable) and from step 1 on (epoch 0 says little: warm-up, a first pass over the data);
- ``hyperband``: ``HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)``,
  Optuna's own: rungs at steps 1, 3, 9, ..., as many brackets as the longest first
  completed trial allows (a 10-epoch training: 3). Nothing is pruned before one trial
  has completed, and that first trial holds no rung values (Optuna's way): the others
  note theirs as they pass each rung, or at ``tell``.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import HpctfError
from ..runpaths import RunPaths
from .config import EARLY_STOPS
from .study import TRIALS_DIR

MEDIAN_STARTUP_TRIALS = 3
MEDIAN_WARMUP_STEPS = 1
HYPERBAND_MIN_RESOURCE = 1
HYPERBAND_REDUCTION_FACTOR = 3
EVERY_S = 10.0
GRACE_S = 120  # as long as a requeue's signal_grace (hpctf.requeue.DEFAULT_SIGNAL_GRACE_S)


def make_pruner(early_stop: str):
    """The Optuna pruner of ``early_stop`` (None for ``none``)."""
    if early_stop == "none":
        return None
    import optuna

    if early_stop == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_STEPS)
    if early_stop == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=HYPERBAND_MIN_RESOURCE, max_resource="auto", reduction_factor=HYPERBAND_REDUCTION_FACTOR
        )
    raise HpctfError(f"early_stop={early_stop!r}: must be one of {', '.join(EARLY_STOPS)}")


def marker_file(folder: Path, index: int) -> Path:
    """``trials/<index>.pruned``: there once element ``index``'s trial was pruned."""
    return Path(folder) / TRIALS_DIR / f"{index}.pruned"


def read_marker(folder: Path, index: int) -> dict | None:
    """The marker's ``{"step", "value", "time"}``, or None where the trial was not pruned."""
    try:
        return json.loads(marker_file(folder, index).read_text())
    except FileNotFoundError:
        return None


def write_marker(folder: Path, index: int, step: int, value: float) -> None:
    path = marker_file(folder, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"step": step, "value": value, "time": time.time()}))
    os.replace(tmp, path)  # whole, or not there: tell never reads half a marker


def signal_number(name: str) -> signal.Signals:
    """``TERM``, ``SIGUSR1``, ``usr1`` or ``15`` as a signal."""
    try:
        return signal.Signals(int(name)) if name.isdigit() else signal.Signals["SIG" + name.upper().removeprefix("SIG")]
    except (KeyError, ValueError):
        raise HpctfError(f"--signal {name}: not a signal name such as TERM or USR1") from None


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet waited for, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] not in ([b"Z"], [b"X"])
    except FileNotFoundError:
        if os.path.exists("/proc/self/stat"):  # Linux: no such process
            return False
    except OSError:
        pass
    try:  # no /proc (macOS): ask the kernel, zombies included
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


class MetricTail:
    """The (step, value) points of one metric that rank 0 logged since the last call."""

    def __init__(self, run_dir: Path, metric: str):
        paths = RunPaths(Path(run_dir))
        self.path, self.tensorboard, self.metric = paths.metrics / "rank-0.jsonl", paths.tensorboard, metric
        self.offset = 0  # bytes of complete lines read so far
        self.in_jsonl = False  # once hpctf's file has the metric, TensorBoard's are left alone
        self.events_seen: list | None = None  # (file, size) of the event files last read

    def new_points(self) -> list[tuple[int, float]]:
        points = self._from_jsonl()
        if self.in_jsonl:
            return points
        return self._from_events()

    def _from_jsonl(self) -> list[tuple[int, float]]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # a new file (rewritten): from its start
                    self.offset = 0
                f.seek(self.offset)
                data = f.read(size - self.offset)
        except FileNotFoundError:
            return []
        data = data[: data.rfind(b"\n") + 1]  # the half-written last line is read next round
        self.offset += len(data)
        points = [(step, value) for name, step, value in _points(data) if name == self.metric]
        self.in_jsonl = self.in_jsonl or bool(points)
        return points

    def _from_events(self) -> list[tuple[int, float]]:
        """Every point of the metric in TensorBoard's event files, when they changed."""
        from ..metrics.events import event_files, read_events

        seen = []
        for path in event_files(self.tensorboard):
            try:
                seen.append((str(path), path.stat().st_size))
            except OSError:
                continue
        if not seen or seen == self.events_seen:
            return []
        self.events_seen = seen
        series, _notes = read_events(self.tensorboard)
        for found in series:
            if found.name == self.metric:
                return list(zip(found.steps, found.values))
        return []


def _points(data: bytes) -> list[tuple[str, int, float]]:
    """(name, step, value) of every complete line of ``data``: msgspec at once, else line by
    line with Python's json (which reads NaN and the infinities), damaged lines skipped."""
    import msgspec

    from ..metrics.jsonl import Point

    try:
        return [(p.name, p.step, p.value) for p in msgspec.json.Decoder(Point).decode_lines(data)]
    except msgspec.DecodeError:
        pass
    points = []
    for line in data.split(b"\n"):
        try:
            obj = json.loads(line)
            name, step, value = obj["name"], obj["step"], obj["value"]
        except (ValueError, KeyError, TypeError):
            continue
        if type(name) is str and type(step) is int and step >= 0 and type(value) in (int, float):
            points.append((name, step, float(value)))
    return points


def report_all(trial, points: Iterable[tuple[int, float]], reported: set[int], prune: bool = True):
    """Report every step of ``points`` not in ``reported`` (added to it) to the Optuna
    ``trial``; with ``prune``, the first (step, value) after which the pruner says stop, else None."""
    for step, value in points:
        if step in reported:  # Optuna keeps a step's first value; a requeued attempt logs it again
            continue
        trial.report(value, step)
        reported.add(step)
        if prune and trial.should_prune():
            return step, value
    return None


def stored(trial):
    """The Optuna ``trial`` as stored (a FrozenTrial: its state, the steps reported)."""
    return next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)


def catch_up(study, index: int, steps: list[int], values: list[float], pruner) -> None:
    """Report the steps of a completed trial that its watcher had no time to (logged after
    its last round), before the trial is told complete: its every step counts in the
    medians, its last sets Hyperband's ``max_resource``. The pruner is asked too, its
    answer unused: Hyperband notes a trial's value at each rung it passes as it answers."""
    trial = study.optuna_trial(index, pruner)
    found = stored(trial)
    if found.state.name != "RUNNING":
        return
    reported = set(found.intermediate_values)
    for point in zip(steps, values):
        report_all(trial, [point], reported, prune=False)
        trial.should_prune()


def why(early_stop: str, study, step: int, value: float, metric: str) -> str:
    """Why the trial was pruned at ``step``, in words."""
    if early_stop == "hyperband":
        best = f"the best 1/{HYPERBAND_REDUCTION_FACTOR}"
        return f"{metric}={value:.4g} is not in {best} of its Hyperband bracket at that step"
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    median = statistics.median(t.intermediate_values[step] for t in done if step in t.intermediate_values)
    return f"{metric}={value:.4g} is worse than the median of the completed trials at that step ({median:.4g})"


class Watcher:
    """One trial's watcher: its study, pruner, metric and process."""

    def __init__(self, folder: Path, index: int, run_dir: Path, pid: int, signum: int, grace: float):
        from .config import SweepConfig

        config = SweepConfig.read(folder)
        self.folder, self.index, self.pid, self.signum, self.grace = Path(folder), index, pid, signum, grace
        self.early_stop, self.metric = config.early_stop, config.metric
        self.pruner = make_pruner(config.early_stop)
        self.tail = MetricTail(run_dir, config.metric)
        self.trial, self.running, self.reported = None, False, set()
        if self.pruner is not None:
            self.trial = config.study(folder).optuna_trial(index, self.pruner)
            found = stored(self.trial)
            self.running = found.state.name == "RUNNING"  # not told yet
            self.reported = set(found.intermediate_values)  # an earlier attempt's

    def round(self) -> tuple[int, float] | None:
        """Report what was logged since the last round; where the trial is to stop, (step, value)."""
        return report_all(self.trial, self.tail.new_points(), self.reported)

    def stop(
        self,
        step: int,
        value: float,
        say: Callable[[str], None],
        mark: bool = True,
        told: Callable[[], bool] = lambda: False,
    ) -> None:
        """Mark the trial pruned, say why, and stop PID: the signal, then TERM after the grace.
        No marker, no signal: stopped unmarked, the trial would be told failed. ``told``:
        whether the job script has said the training ended (its SIGTERM), which ends the
        grace: with a checkpoint signal PID is the batch shell itself (``$$``), alive until
        this watcher ends, so its being alive says nothing about the training."""
        if mark:
            write_marker(self.folder, self.index, step, value)
        try:
            reason = why(self.early_stop, self.trial.study, step, value, self.metric)
        except Exception:  # the line is for people: never let it keep the trial running
            reason = f"{self.metric}={value:.4g}"
        sent = f"sending {self.signum.name} to {self.pid}"
        say(f"hpctf: trial {self.index} pruned at step {step}: {reason}; {sent}")
        _kill(self.pid, self.signum)
        if self.signum in (signal.SIGTERM, signal.SIGKILL):
            return
        deadline = time.monotonic() + self.grace
        while alive(self.pid) and not told():
            if time.monotonic() >= deadline:
                late = f"{self.pid} still runs {self.grace:g}s after {self.signum.name}"
                say(f"hpctf: trial {self.index}: {late}: sending SIGTERM")
                _kill(self.pid, signal.SIGTERM)
                return
            time.sleep(min(1.0, self.grace))


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # ended meanwhile
        pass


def watch(
    folder: Path,
    index: int,
    run_dir: Path,
    pid: int,
    signum: int = signal.SIGTERM,
    every: float = EVERY_S,
    grace: float = GRACE_S,
    say: Callable[[str], None] | None = None,
) -> str:
    """Watch element ``index``'s trial until PID ends or the trial is pruned; never raises.
    What ended the watch: ``"off"`` (early_stop none, or the trial no longer runs),
    ``"ended"`` (PID ended), ``"pruned"`` or ``"broken"`` (the watcher could not start)."""
    said: set[str] = set()

    def say_once(line: str) -> None:
        if line not in said:
            said.add(line)
            (say or _stderr)(line)

    told = _StopOnTerm()  # first: a SIGTERM while the study opens waits for the open to end
    try:
        watcher = Watcher(folder, index, run_dir, pid, signal.Signals(signum), grace)
        if not watcher.running:
            return "off"
        marker = read_marker(folder, index)
        if marker is not None:  # pruned by an earlier attempt (requeued since): stays pruned
            watcher.stop(marker["step"], marker["value"], say_once, mark=False, told=lambda: told.stop)
            return "pruned"
    except Exception as err:  # noqa: BLE001 - no error of ours may fail the training
        say_once(f"hpctf: trial {index}: early stopping is off for this trial: {_text(err)}")
        return "broken"
    while alive(pid) and not told.stop:
        try:
            pruned = watcher.round()
        except Exception as err:  # noqa: BLE001
            say_once(f"hpctf: trial {index}: early stopping skipped a round: {_text(err)} (the training goes on)")
            pruned = None
        if pruned is not None:
            try:
                watcher.stop(*pruned, say_once, told=lambda: told.stop)
            except Exception as err:  # noqa: BLE001
                say_once(f"hpctf: trial {index}: could not stop {pid}: {_text(err)}")
            return "pruned"
        told.sleep(every)
    return "ended"


class _StopOnTerm:
    """SIGTERM (the job script, once the training has ended) stops the watcher between
    rounds: at once while it sleeps, after the round while it writes to the study (killed
    there, it could leave the journal's lock behind for the next writer to wait out)."""

    class _Woken(Exception):
        pass

    def __init__(self) -> None:
        self.stop, self.sleeping = False, False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum, frame) -> None:
        self.stop = True
        if self.sleeping:
            raise self._Woken

    def sleep(self, seconds: float) -> None:
        try:
            self.sleeping = True
            if not self.stop:
                time.sleep(seconds)
        except self._Woken:
            pass
        finally:
            self.sleeping = False


def _text(err: BaseException) -> str:
    return str(err) if isinstance(err, HpctfError) else f"{type(err).__name__}: {err}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
