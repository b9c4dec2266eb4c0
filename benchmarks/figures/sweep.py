"""Figure 10: a sweep of 1,000 trials: one ``sbatch``, one ``sacct`` per refresh, and asking
the study for trials with 16 askers at once.

- **Submit.** ``hpctf sweep --sbatch hold ... --trials 1000 --parallel 10 PROGRAM`` in a
  fresh process, against the floor of figure 1: the same interpreter importing submitit
  and jinja2, plus a raw ``sbatch --parsable`` of the very array script hpctf rendered
  (its ``#SBATCH --array=0-999%10`` and ``--hold`` included), which is what a user writing
  the job array by hand submits. ``hpctf submit`` of one job is shown too: what the sweep
  adds to a plain hpctf job (its config, the study made at submit time). Calls to
  ``sbatch`` are counted with shims first on ``PATH``; every array is held, and
  cancelled right after its round.
- **Refresh.** ``SweepRun.trials()`` of the held array (in-process, in a fresh process
  that counts the calls as ``tracking`` does), and ``hpctf sweep status ID`` (fresh
  process, shims), against the one ``sacct -j ID`` hpctf sends; then again once every
  trial has been told to the study (written straight into its journal: the array itself
  never runs).
- **Ask.** ``python -m hpctf.sweep.trial ask DIR INDEX``, a fresh process each, as an
  array element runs it: 16 at once against one study, against the same ask alone on a
  copy of the same study. Per-ask latency, the time until all 16 have their trials, and
  how many distinct trials they got. The askers share this machine's cores (on a cluster
  each has its own node), so the 16 also wait for CPU, not only for the journal's lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from ..lab import Context, job_id
from ..measure import BenchError, Figure, exactly, interleave, ratio_at_most, run, wall_ms
from .tracking import count_lines, counting_env

NUMBER = 10
NAME = "sweep"
TITLE = "Sweeps: one job array, one sacct per refresh, concurrent asks"
NEEDS_SLURM = True

SCHEDULER = ("sbatch", "sacct", "squeue", "scontrol", "sinfo", "scancel")
PARAM = "x=uniform(0,1)"
PROGRAM = "import sys\nprint('trial', sys.argv[1:])\n"
SACCT_FIELDS = "JobID,State,ExitCode,NodeList,Start,End"  # what hpctf's watcher asks for


def measure(ctx: Context) -> list[Figure]:
    trials = ctx.sizes([1000], [50])[0]
    home = ctx.folder("homes", "sweep")
    env, calls = counting_env(ctx, home, SCHEDULER)
    figures, array = submit_figures(ctx, env, calls, trials)
    figures += refresh_figures(ctx, env, calls, array, trials)
    figures += ask_figures(ctx, askers=ctx.sizes([16], [4])[0])
    return figures


# -- submit ----------------------------------------------------------------------------


def calls_by_name(calls: Path, since: int) -> dict[str, int]:
    lines = calls.read_text().splitlines()[since:] if calls.exists() else []
    out: dict[str, int] = {}
    for line in lines:
        name = line.split(" ", 1)[0]
        out[name] = out.get(name, 0) + 1
    return out


def submit_figures(ctx: Context, env: dict[str, str], calls: Path, trials: int) -> tuple[list[Figure], dict]:
    src = ctx.folder("src-sweep")
    (src / "program.py").write_text(PROGRAM)
    sweep = [ctx.hpctf, "sweep", "--sbatch", "hold", "--param", PARAM, "--metric", "score"]
    sweep += ["--trials", str(trials), "--parallel", "10", "--json", str(src / "program.py")]
    single = [ctx.hpctf, "submit", "--sbatch", "hold", "--json", str(src / "program.py")]
    imports = [ctx.python, "-c", "import submitit, jinja2"]
    with_optuna = [ctx.python, "-c", "import submitit, jinja2, optuna"]
    plain = ctx.env(home=Path(env["HPCTF_HOME"]))  # no shims: the raw side pays no shell
    sbatch_counts: list[float] = []
    others: dict[str, int] = {}
    paced = [0.0]

    def submit(cmd: list[str], counted: bool = False) -> tuple[float, dict]:
        if counted:
            paced[0] += wait_for_room(ctx, trials)
        before = count_lines(calls)
        wall, done = run(cmd, env)
        record = json.loads(done.stdout)
        ctx.track(record["job_id"])
        if counted:
            seen = calls_by_name(calls, before)
            sbatch_counts.append(float(seen.pop("sbatch", 0)))
            for name, n in seen.items():
                others[name] = others.get(name, 0) + n
        return wall * 1000, record

    array = submit(sweep, counted=True)[1]  # warm-up; kept held for the refresh figures
    script = Path(array["run_dir"]) / "job.sbatch"
    raw = ["sbatch", "--parsable", str(script)]
    directives = [line for line in script.read_text().splitlines() if line.startswith("#SBATCH --array")]
    if directives != [f"#SBATCH --array=0-{trials - 1}%10"]:
        raise BenchError(f"{script}: expected one --array=0-{trials - 1}%10 directive, found {directives}")
    queued = subprocess.run(
        ["squeue", "-h", "-j", array["job_id"], "-o", "%i %r"], env=plain, capture_output=True, text=True, timeout=30
    ).stdout.split("\n")

    def cancelled_after(ms: float, job: str) -> float:
        subprocess.run(["scancel", job], env=plain, capture_output=True, timeout=60, check=False)
        ctx.jobs.discard(job)
        return ms

    def hpctf_sweep() -> float:
        ms, record = submit(sweep, counted=True)
        return cancelled_after(ms, record["job_id"])

    def hpctf_submit() -> float:
        ms, record = submit(single)
        return cancelled_after(ms, record["job_id"])

    def raw_sbatch() -> float:
        paced[0] += wait_for_room(ctx, trials)
        wall, done = run(raw, plain)
        return cancelled_after(wall * 1000, ctx.track(job_id(done.stdout)))

    def import_only() -> float:
        return run(imports, plain)[0] * 1000

    def import_optuna() -> float:
        return run(with_optuna, plain)[0] * 1000

    run([*raw[:1], "--test-only", *raw[1:]], plain)  # warm-up, with no job (every array costs, see wait_for_room)
    hpctf_submit(), import_only(), import_optuna()
    rounds = ctx.repeats(full=3, quick=2)
    t = interleave(
        rounds,
        {
            "sweep": hpctf_sweep,
            "submit": hpctf_submit,
            "sbatch": raw_sbatch,
            "import": import_only,
            "optuna": import_optuna,
        },
    )
    floor = [i + s for i, s in zip(t["import"], t["sbatch"], strict=True)]
    floor_optuna = [i + s for i, s in zip(t["optuna"], t["sbatch"], strict=True)]
    what = f"`hpctf sweep --trials {trials:,} --parallel 10` (held), fresh process"
    other = ", ".join(f"{n} {name}" for name, n in sorted(others.items())) or "none"
    return [
        Figure(
            "sweep.submit.wall",
            what,
            "ms",
            t["sweep"],
            baseline=(
                'floor: `python -c "import submitit, jinja2"` + raw `sbatch --parsable` of the same array script '
                f"(`--array=0-{trials - 1}%10`)"
            ),
            baseline_samples=floor,
            paired=True,
            goal=ratio_at_most(1.5),
            note=(
                "the plain alternative is the job array a user writes by hand: the same rendered script, "
                "one raw sbatch, as figure 1's floor; `sweep.submit.vs_submit` shows what a sweep adds to "
                f"one hpctf job. squeue shows the array as one line: {queued[0].strip()!r}"
            ),
        ),
        Figure(
            "sweep.submit.vs_floor_optuna",
            f"{what}, against a floor that imports Optuna too",
            "ms",
            t["sweep"],
            baseline='`python -c "import submitit, jinja2, optuna"` + the same raw `sbatch --parsable`',
            baseline_samples=floor_optuna,
            paired=True,
            note="a sweep's submit does not import Optuna (it checks it is installed; the first element makes a "
            "journal study; only a database study is made at submit); `import submitit, jinja2, optuna` alone: "
            f"{median(t['optuna']):.0f} ms",
        ),
        Figure(
            "sweep.submit.vs_sbatch",
            f"{what} ÷ raw `sbatch` alone",
            "ms",
            t["sweep"],
            baseline="raw `sbatch --parsable` of the same array script",
            baseline_samples=t["sbatch"],
        ),
        Figure(
            "sweep.submit.vs_submit",
            f"{what} ÷ `hpctf submit` of one job",
            "ms",
            t["sweep"],
            baseline="`hpctf submit --sbatch hold` of the same program, one job",
            baseline_samples=t["submit"],
            paired=True,
        ),
        Figure(
            "sweep.submit.sbatch_calls",
            f"`sbatch` calls per `hpctf sweep --trials {trials:,}` (shims first on PATH)",
            "calls",
            sbatch_counts,
            goal=exactly(1, "call"),
            note=f"other scheduler calls in all {len(sbatch_counts)} sweeps: {other}; "
            f"{paced[0]:.0f} s spent, unmeasured, waiting for cancelled arrays' job records to go",
        ),
    ], array


def wait_for_room(ctx: Context, tasks: int, timeout: float = 420) -> float:
    """Until an array of ``tasks`` leaves 40% of the controller's ``MaxJobCount`` to
    everyone else; seconds waited.

    A cancelled array is split into one job record per task, which the controller keeps
    for ``MinJobAge`` (300 s by default): a few cancelled 1,000-task arrays fill the test
    cluster's 10,000 records, and every ``sbatch`` on it then hangs (retrying) until they
    are purged. Counted with ``squeue -r`` (a pending array as its tasks): an upper bound.
    """
    env = ctx.env()
    config = run(["scontrol", "show", "config"], env)[1].stdout
    limit = next((int(line.split("=")[1]) for line in config.splitlines() if line.startswith("MaxJobCount")), 10_000)
    t0 = time.monotonic()
    while True:
        held = len(run(["squeue", "--states=all", "-h", "-r", "-o", "%i"], env)[1].stdout.split())
        if held + tasks <= limit * 6 // 10:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"the controller holds {held} job records of {limit} for {timeout:.0f}s")
        time.sleep(5)


# -- refresh ---------------------------------------------------------------------------


def wait_listed(ctx: Context, job: str, timeout: float = 60) -> float:
    """Until sacct lists the array (accounting lags sbatch); seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        out = run(["sacct", "-n", "-X", "-o", "JobID", "--parsable2", "-j", job], ctx.env())[1].stdout
        if out.strip():
            return time.monotonic() - t0
        time.sleep(0.5)
    raise BenchError(f"sacct did not list job array {job} within {timeout:.0f}s")


def tell_every_trial(folder: Path, trials: int) -> None:
    """Every trial of the sweep in ``folder`` asked and told complete, as its elements would
    have (``trials/<index>.json`` and the study's journal), through one Optuna storage:
    Study.ask per index replays the whole journal each time."""
    from hpctf.sweep.config import SweepConfig
    from hpctf.sweep.study import TRIALS_DIR, distribution, script_value

    config = SweepConfig.read(folder)
    space = config.space
    study = config.study(folder).optuna_study()
    (folder / TRIALS_DIR).mkdir(exist_ok=True)
    for index in range(trials):
        trial = study.ask({p.name: distribution(p) for p in space})
        params = {p.name: script_value(p, trial.params[p.name]) for p in space}
        (folder / TRIALS_DIR / f"{index}.json").write_text(json.dumps({"number": trial.number, "params": params}))
        study.tell(trial, float(params["x"]))


def refresh_figures(ctx: Context, env: dict[str, str], calls: Path, array: dict, trials: int) -> list[Figure]:
    job = array["job_id"]
    waited = wait_listed(ctx, job)
    rounds = ctx.repeats(full=20, quick=3)
    sacct = ["sacct", "-o", SACCT_FIELDS, "--parsable2", "--duplicates", "-j", job]
    status = [ctx.hpctf, "sweep", "status", job]
    status_json = [ctx.hpctf, "sweep", "status", "--json", job]
    plain = ctx.env(home=Path(env["HPCTF_HOME"]))
    figures: list[Figure] = []
    for told in (False, True) if not ctx.quick else (False,):
        if told:
            tell_every_trial(Path(array["run_dir"]), trials)
        probe = json.loads(
            run(
                [ctx.python, "-m", "benchmarks.probes.sweep_refresh", "--job", job, "--rounds", str(rounds)],
                env,
                timeout=300,
            )[1].stdout
        )
        r = probe["rounds"]
        cli_calls: list[float] = []

        def cli(cmd: list[str], counts: list[float] = cli_calls) -> float:
            before = count_lines(calls)
            ms = wall_ms(cmd, env, timeout=300)
            counts.append(float(count_lines(calls) - before))
            return ms

        variants = {
            "status": lambda: cli(status),
            "json": lambda: cli(status_json),
            "sacct": lambda: wall_ms(sacct, plain),
        }
        for fn in variants.values():
            fn()  # warm-up
        del cli_calls[:]
        t = interleave(ctx.repeats(full=10, quick=2), variants)
        key = "sweep.refresh" + (".told" if told else "")
        state = "every trial told complete" if told else "no trial asked yet"
        what = f"of a held {trials:,}-element array, {state}"
        states = r[-1]["states"]
        others = sorted({p for x in r for p in x["other_processes"]})
        sacct_note = f"sacct listed the array {waited:.1f} s after sbatch; waited for that first"
        figures += [
            Figure(
                f"{key}.calls.shim",
                f"scheduler calls per `SweepRun.trials()` {what} (shims first on PATH)",
                "calls",
                [x["shim_calls"] for x in r],
                goal=exactly(1, "call"),
                note=f"rows' states: {states}; {sacct_note}" if not told else f"rows' states: {states}",
            ),
            Figure(
                f"{key}.calls.subprocess",
                f"scheduler calls per `SweepRun.trials()` {what}: sacct/squeue launched through `subprocess`",
                "calls",
                [x["subprocess_calls"] for x in r],
                goal=exactly(1, "call"),
                note=("other processes started: " + ", ".join(others)) if others else "no other process started",
            ),
            Figure(
                f"{key}.calls.watcher",
                f"scheduler calls per `SweepRun.trials()` {what}: submitit `watcher.num_calls`",
                "calls",
                [x["watcher_calls"] for x in r],
                goal=exactly(1, "call"),
            ),
            Figure(
                f"{key}.calls.cli",
                f"scheduler calls per `hpctf sweep status [--json] ID` {what} (shims)",
                "calls",
                cli_calls,
                goal=exactly(1, "call"),
            ),
            Figure(
                f"{key}.trials",
                f"`SweepRun.trials()` {what}, in-process (one refresh, {trials:,} rows)",
                "ms",
                [x["ms"] for x in r],
                baseline=f"one raw `sacct -o {SACCT_FIELDS} --parsable2 --duplicates -j ID`",
                baseline_samples=[wall_ms(sacct, plain) for _ in range(rounds)],
            ),
            Figure(
                f"{key}.cli",
                f"`hpctf sweep status ID` (table) {what}, fresh process",
                "ms",
                t["status"],
                baseline="the same raw `sacct -j ID`, fresh process",
                baseline_samples=t["sacct"],
                paired=True,
            ),
            Figure(
                f"{key}.cli_json",
                f"`hpctf sweep status --json ID` {what}, fresh process",
                "ms",
                t["json"],
                baseline="the same raw `sacct -j ID`, fresh process",
                baseline_samples=t["sacct"],
            ),
        ]
    return figures


# -- ask -------------------------------------------------------------------------------


def study_folder(ctx: Context, name: str, sampler: str, told: int) -> Path:
    """A sweep folder as a submit leaves it (sweep.json, the study made), with ``told``
    trials already asked and told complete."""
    from hpctf.sweep.config import SweepConfig

    folder = ctx.folder("ask", "templates", name)
    config = SweepConfig(params=(PARAM,), metric="score", trials=100_000, sampler=sampler).checked()
    config.write(folder)
    config.study(folder).optuna_study()
    if told:
        tell_every_trial(folder, told)
    return folder


def asks(ctx: Context, env: dict[str, str], folder: Path, indices: list[int]) -> tuple[list[float], float]:
    """``ask`` for every index, one fresh process each, all started at once: (each ask's
    ms, ms until the last had its answer)."""
    return at_once([[ctx.python, "-m", "hpctf.sweep.trial", "ask", str(folder), str(i)] for i in indices], env)


def at_once(cmds: list[list[str]], env: dict[str, str]) -> tuple[list[float], float]:
    """Every command in its own process, all started at once: (each one's ms, ms until
    the last had ended)."""
    barrier = threading.Barrier(len(cmds))
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * len(cmds)
    errors: list[BaseException] = []

    def one(i: int, cmd: list[str]) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            run(cmd, env, timeout=300)
        except BenchError as err:
            errors.append(err)
        spans[i] = (t0, time.perf_counter())

    threads = [threading.Thread(target=one, args=(i, cmd)) for i, cmd in enumerate(cmds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [(end - start) * 1000 for start, end in spans], (max(e for _, e in spans) - min(s for s, _ in spans)) * 1000


def answers(folder: Path, indices: list[int]) -> tuple[set[int], set[str]]:
    """The trial numbers and parameter sets the asks of ``indices`` got."""
    found = [json.loads((folder / "trials" / f"{i}.json").read_text()) for i in indices]
    return {a["number"] for a in found}, {json.dumps(a["params"], sort_keys=True) for a in found}


def ask_figures(ctx: Context, askers: int) -> list[Figure]:
    env = ctx.env(home=ctx.folder("homes", "sweep-ask"))
    told = ctx.sizes([100], [10])[0]
    cases = [("random", 0), ("random", told), ("tpe", told)] if not ctx.quick else [("random", 0), ("tpe", told)]
    rounds = ctx.repeats(full=5, quick=1)
    copies = [0]
    figures: list[Figure] = []
    distinct: list[float] = []
    distinct_params: list[int] = []
    imports: list[float] = []
    import_optuna = [ctx.python, "-c", "import optuna"]
    for sampler, prefilled in cases:
        template = study_folder(ctx, f"{sampler}-{prefilled}", sampler, prefilled)
        indices = list(range(prefilled, prefilled + askers))
        many: list[float] = []
        alone: list[float] = []
        spans: list[float] = []

        def fresh_copy(template: Path = template) -> Path:
            copies[0] += 1
            target = ctx.scratch / "ask" / f"copy-{copies[0]}"
            shutil.copytree(template, target)
            return target

        def burst(indices: list[int] = indices, many: list[float] = many, spans: list[float] = spans) -> float:
            folder = fresh_copy()
            each, span = asks(ctx, env, folder, indices)
            numbers, params = answers(folder, indices)
            distinct.append(float(len(numbers)))
            distinct_params.append(len(params))
            many.extend(each)
            spans.append(span)
            shutil.rmtree(folder, ignore_errors=True)
            return span

        def one(index: int = indices[0], alone: list[float] = alone) -> float:
            folder = fresh_copy()
            alone.append(asks(ctx, env, folder, [index])[0][0])
            shutil.rmtree(folder, ignore_errors=True)
            return alone[-1]

        variants = {"burst": burst, "alone": one}
        if not figures:
            one()  # warm-up: bytecode
            del alone[:]
            variants["imports"] = lambda: imports.extend(at_once([import_optuna] * askers, env)[0]) or 0.0
        interleave(rounds, variants)
        state = f"a study holding {prefilled} complete trials" if prefilled else "a new study, as submitted"
        key = f"sweep.ask{askers}.{sampler}" + (f"_{prefilled}" if prefilled else "")
        figures += [
            Figure(
                key,
                f"one trial's `ask`, fresh process, {askers} askers at once, {sampler} sampler, {state}",
                "ms",
                many,
                baseline="the same ask alone (1 asker), same study",
                baseline_samples=alone,
                note=f"per ask: median {median(many):.0f} ms, max {max(many):.0f} ms; {askers} askers on "
                f"{os.cpu_count()} cores",
            ),
            Figure(
                f"{key}.all",
                f"until all {askers} askers have their trials ({sampler}, {state})",
                "ms",
                spans,
                baseline="one ask alone",
                baseline_samples=alone,
            ),
        ]
        if imports and len(figures) == 2:
            figures.append(
                Figure(
                    f"{key}.vs_imports",
                    f"one trial's `ask`, {askers} askers at once ({sampler}, {state}), "
                    f"against {askers} processes importing Optuna at once",
                    "ms",
                    many,
                    baseline=f'{askers} concurrent `python -c "import optuna"`, per process',
                    baseline_samples=imports,
                    note="what the journal, its lock and the sampler add to starting Python and Optuna "
                    "while the askers share the same cores",
                )
            )
    figures.append(
        Figure(
            f"sweep.ask{askers}.distinct",
            f"distinct trials the {askers} concurrent askers got (trial numbers), every case above",
            "trials",
            distinct,
            goal=exactly(askers, "trials"),
            note=f"distinct parameter sets per burst: {sorted(set(distinct_params))}",
        )
    )
    return figures


def median(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs)
