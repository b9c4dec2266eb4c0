"""The ``hpctf`` command.

Options before the entry script belong to hpctf; everything after it goes to the script,
as with ``srun`` and ``mpirun``::

    hpctf render --backend mpi --nodes 2 --procs-per-node 4 train.py --epochs 3

Only jinja2 and click are imported to render; submitit, TensorFlow and Horovod never are.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import HpctfError, SpecError
from .job.keras_policy import MODES as KERAS_MODES

EXIT_USAGE = 2  # bad input: same code click uses for usage errors


# ---------------------------------------------------------------------------------------
# The job options, declared once and shared by every command that builds a spec.
# ---------------------------------------------------------------------------------------


def _key_value(flag: str, allow_bare: bool = False) -> Callable:
    def convert(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
        out: dict[str, Any] = {}
        for item in values:
            key, sep, value = item.partition("=")
            if not sep and not allow_bare:
                raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
            out[key] = value if sep else None
        return out

    return convert


# -- requeue: preemption and time limits (fields of the estimator, same names).
REQUEUE_OPTIONS = [
    click.option(
        "--requeue",
        is_flag=True,
        default=False,
        help="before the time limit (SIGUSR1), tasks save a checkpoint and the job requeues itself",
    ),
    click.option("--max-restarts", type=int, default=None, help="with --requeue: requeue at most N times [default: 3]"),
    click.option(
        "--signal-grace",
        type=int,
        default=None,
        metavar="SECONDS",
        help="with --requeue: Slurm signals this long before the time limit [default: 120]",
    ),
]

JOB_OPTIONS = [
    click.option(
        "--backend",
        type=click.Choice(["single", "none", "mpi", "ps"]),
        default="single",
        show_default=True,
        help="single process, Horovod over MPI, or parameter server",
    ),
    click.option("--nodes", "node_count", type=int, default=1, show_default=True, help="nodes to allocate"),
    click.option(
        "--procs-per-node",
        "process_count_per_node",
        type=int,
        default=1,
        show_default=True,
        help="MPI processes per node",
    ),
    click.option("--gpus-per-node", type=int, default=None, help="GPUs per node (--gres=gpu:N); implies --use-gpu"),
    click.option("--gpu-type", default=None, help="GPU type in gres.conf (--gres=gpu:TYPE:N)"),
    click.option("--use-gpu", is_flag=True, default=False, help="one GPU per process"),
    click.option("--workers", "worker_count", type=int, default=1, show_default=True, help="ps backend: workers"),
    click.option(
        "--ps",
        "parameter_server_count",
        type=int,
        default=1,
        show_default=True,
        help="ps backend: parameter servers (0: workers only)",
    ),
    click.option("--chief", is_flag=True, default=False, help="ps backend: add a chief task"),
    click.option(
        "--port-base",
        type=int,
        default=None,
        help=(
            "ps backend: first task port; task i listens on PORT+i [default: a range of the job's own, from its job id]"
        ),
    ),
    click.option(
        "--launcher",
        type=click.Choice(["srun", "mpirun"]),
        default=None,
        help="mpi backend: how ranks start [default: the target's, else srun]",
    ),
    click.option("--pmi", default=None, help="mpi backend: srun --mpi flavour [default: the target's, else pmix]"),
    click.option(
        "--target",
        "compute_target",
        default=None,
        help=(
            "compute target: a profile from hpctf.toml / ~/.config/hpctf/config.toml, 'slurm' or 'local' "
            "(hpctf targets lists them)"
        ),
    ),
    click.option("--partition", "-p", default=None),
    click.option("--account", "-A", default=None),
    click.option("--qos", default=None),
    click.option("--time", "-t", default=None, help="time limit, e.g. 30, 1:00:00, 2-00:00:00"),
    click.option("--job-name", "-J", default=None),
    click.option("--cpus-per-task", type=int, default=None),
    click.option("--mem", "memory", default=None, help="memory per node, e.g. 16G"),
    click.option("--constraint", default=None),
    click.option("--exclusive", is_flag=True, default=False),
    click.option("--source-dir", default=None, help="folder with the code [default: the entry script's folder]"),
    click.option("--pip", "pip_packages", multiple=True, help="pip package (repeatable)"),
    click.option("--conda", "conda_packages", multiple=True, help="conda package (repeatable)"),
    click.option(
        "--env",
        "environment_variables",
        multiple=True,
        callback=_key_value("--env"),
        help="KEY=VALUE for every task (repeatable)",
    ),
    click.option(
        "--sbatch",
        "sbatch_options",
        multiple=True,
        callback=_key_value("--sbatch", allow_bare=True),
        help="extra sbatch FLAG=VALUE or FLAG (repeatable)",
    ),
    click.option("--setup", multiple=True, help="shell line run before the launch (repeatable)"),
    click.option("--module", "modules", multiple=True, help="environment module to load (repeatable)"),
    click.option(
        "--container-image",
        default=None,
        help="run every task in this image (Apptainer .sif/docker://, or a Pyxis image)",
    ),
    click.option(
        "--container-runtime",
        type=click.Choice(["apptainer", "singularity", "pyxis"]),
        default=None,
        help="[default: the target's, else apptainer]",
    ),
    click.option("--mount", "container_mounts", multiple=True, help="container bind SRC[:DST[:ro]] (repeatable)"),
    click.option("--python", default=None, help="interpreter on the compute nodes [default: this one]"),
    click.option(
        "--keras",
        type=click.Choice(KERAS_MODES),
        default="auto",
        show_default=True,
        help=(
            "which Keras tf.keras is in the tasks: auto = tf-keras (Keras 2) for mpi and ps where installed, "
            "legacy = tf-keras, 3 = Keras 3"
        ),
    ),
    click.option("--log-dir", default=None, help="folder for the job's logs [default: SOURCE_DIR/hpctf-logs]"),
    click.option(
        "--templates",
        "template_dir",
        default=None,
        type=click.Path(exists=True, file_okay=False),
        help="folder whose templates override the built-in ones",
    ),
    *REQUEUE_OPTIONS,
    click.argument("entry_script"),
    click.argument("script_args", nargs=-1, type=click.UNPROCESSED),
]

# Options that shape the command line but are not fields of the estimator.
NON_SPEC = ("backend", "source_dir", "script_args", "log_dir", "template_dir")


def job_options(command: Callable) -> Callable:
    for option in reversed(JOB_OPTIONS):
        command = option(command)
    return command


def spec_from_options(options: dict[str, Any]):
    """The estimator the command line describes (validated by its constructor)."""
    from .spec import TensorFlow

    entry = options["entry_script"]
    source_dir = options["source_dir"]
    if source_dir is None:  # `hpctf render examples/single/train.py`: that folder is the code
        source_dir = os.path.dirname(entry) or "."
        entry = os.path.basename(entry)
    fields = {k: v for k, v in options.items() if k not in NON_SPEC}
    fields.update(
        source_directory=source_dir,
        entry_script=entry,
        arguments=list(options["script_args"]),
        distributed_backend=options["backend"],
        pip_packages=list(options["pip_packages"]),
        conda_packages=list(options["conda_packages"]),
        setup=list(options["setup"]),
        modules=list(options["modules"]),
        container_mounts=list(options["container_mounts"]),
    )
    return TensorFlow(**fields)


def _template_dirs(options: dict[str, Any]) -> list[str]:
    return [options["template_dir"]] if options["template_dir"] else []


def _param(option: Callable) -> click.Parameter:
    """The click parameter a ``click.option(...)``/``click.argument(...)`` decorator adds."""
    return option(lambda: None).__click_params__[0]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A bad spec, an hpctf refusal or a broken site template: one message, exit 2."""
    import jinja2

    try:
        yield
    except (SpecError, HpctfError) as err:
        fail(_explain(err))
    except jinja2.TemplateError as err:
        fail(f"template error: {err}")


def _explain(err: Exception) -> str:
    """The error in the command line's words: a spec problem also names its option
    (``node_count=-1: must be an integer >= 1 [--nodes]``)."""
    if not isinstance(err, SpecError):
        return str(err)
    options = {
        "distributed_backend": "--backend",
        "source_directory": "--source-dir",
        "arguments": "SCRIPT_ARGS",
        "entry_script": "ENTRY_SCRIPT",
    }
    for option in JOB_OPTIONS:
        param = _param(option)
        if isinstance(param, click.Option):
            options.setdefault(param.name, max(param.opts, key=len))
    lines = []
    for problem in err.problems:
        option = options.get(problem.field.split("[", 1)[0])
        lines.append(f"  - {problem} [{option}]" if option else f"  - {problem}")
    return str(err).split("\n", 1)[0] + "\n" + "\n".join(lines)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"hpctf: {message}", err=True)
    sys.exit(code)


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------

# Everything after the entry script belongs to the script: stop parsing options there.
SCRIPT_STYLE = {"allow_interspersed_args": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpctf")
def cli() -> None:
    """Train TensorFlow on Slurm: render, submit and track estimator jobs."""


@cli.command(context_settings=SCRIPT_STYLE)
@job_options
@click.option(
    "--output",
    "-o",
    "output_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="write the script to FILE instead of stdout",
)
def render(output_file: str | None, **options: Any) -> None:
    """Print the sbatch script for ENTRY_SCRIPT [SCRIPT_ARGS]..."""
    from .render import JobPaths, render_script

    with user_errors():
        spec = spec_from_options(options)
        paths = JobPaths.for_spec(spec, options["log_dir"])
        script = render_script(spec, paths, template_dirs=_template_dirs(options))
    if output_file:
        Path(output_file).write_text(script)
        os.chmod(output_file, 0o755)
        click.echo(f"wrote {output_file}", err=True)
    else:
        click.echo(script, nl=False)
    if not paths.log_dir.is_dir():
        click.echo(f"note: the job writes its logs to {paths.log_dir}: create it before sbatch (mkdir -p)", err=True)


@cli.command("tf-config")
@click.option("--ps", type=int, default=1, show_default=True, help="parameter servers (0: workers only)")
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--chief", is_flag=True, default=False)
@click.option(
    "--port-base",
    type=int,
    default=None,
    help="task i listens on PORT+i [default: a range of the job's own, from SLURM_JOB_ID]",
)
@click.option("--indent", type=int, default=None, help="pretty-print with this indent")
def tf_config(ps: int, workers: int, chief: bool, port_base: int | None, indent: int | None) -> None:
    """Print this Slurm task's TF_CONFIG, derived from the job's node list.

    Run it inside a job step (srun), e.g. in your own sbatch script:

        srun bash -c 'TF_CONFIG=$(hpctf tf-config --ps 1 --workers 2) python train.py'
    """
    from .job.layout import tf_config_for_task
    from .job.taskenv import RuntimeSetupError

    if ps < 0 or workers < 1:
        fail(f"--ps={ps} --workers={workers}: need --ps >= 0 and --workers >= 1")
    try:
        config = tf_config_for_task(os.environ, ps, workers, chief, port_base)
    except (RuntimeSetupError, ValueError) as err:
        fail(str(err))
    click.echo(json.dumps(config, indent=indent))


# ---------------------------------------------------------------------------------------
# Submit and track
# ---------------------------------------------------------------------------------------


@cli.command(context_settings=SCRIPT_STYLE)
@job_options
@click.option("--wait", is_flag=True, help="follow the job until it ends; exit with its exit code")
@click.option("--json", "as_json", is_flag=True, help="print the submission as JSON")
@click.option("--dry-run", is_flag=True, help="show what would be submitted; submit nothing")
@click.option(
    "--snapshot-limit-mb",
    type=float,
    default=None,
    help="largest code snapshot [default: 300, or $HPCTF_SNAPSHOT_LIMIT_MB]",
)
def submit(wait: bool, as_json: bool, dry_run: bool, snapshot_limit_mb: float | None, **options: Any) -> None:
    """Snapshot the code and submit ENTRY_SCRIPT [SCRIPT_ARGS]... to Slurm."""
    from . import submission

    with user_errors():
        spec = spec_from_options(options)
        the_plan = submission.plan(spec, template_dirs=_template_dirs(options), snapshot_limit_mb=snapshot_limit_mb)
        if dry_run:
            _print_dry_run(the_plan, as_json)
            return
        record = submission.schedule(the_plan)
    if as_json:
        click.echo(json.dumps(record.to_dict()))
    else:
        where = " on this machine" if _executor(record).runs_here else ""
        click.echo(f"Submitted job {record.job_id}{where} ({record.name}: {record.backend}, {record.shape})")
        click.echo(f"  run dir  {record.run_dir}")
        click.echo(f"  follow   hpctf logs {record.job_id} --follow")
        click.echo(f"  status   hpctf status {record.job_id}")
    if wait:
        sys.exit(_wait_and_stream(record, quiet=as_json))


def _print_dry_run(the_plan, as_json: bool) -> None:
    info = the_plan.describe()
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"# dry run: would run `{info['command']}` with the script below", err=True)
    click.echo(
        f"# code snapshot {info['snapshot']['digest']}: "
        f"{info['snapshot']['files']} files, {info['snapshot']['bytes']} bytes",
        err=True,
    )
    click.echo(the_plan.script, nl=False)


def _wait_and_stream(record, quiet: bool = False) -> int:
    """Spinner while pending, task 0's log while running; the job's exit code."""
    from rich.console import Console

    from .registry import Registry
    from .runpaths import RunPaths
    from .runs import follow, log_path, refresh
    from .states import JobState

    registry = Registry(RunPaths.of(record).registry)
    polls_queue = _executor(record).polls_queue
    console = Console(stderr=True)

    def current() -> JobState:
        refresh(registry, [record])
        return JobState.from_slurm(record.state)

    waiting = (JobState.PENDING, JobState.CONFIGURING, JobState.UNKNOWN)
    shown = None
    queued, asked = None, 0.0
    with console.status(f"job {record.job_id}: waiting in the queue", spinner="dots") as spinner:
        while True:
            # While squeue says the job is pending, it is the one scheduler call per
            # refresh (it gives Slurm's reason too), every few seconds; then the usual refresh.
            if polls_queue and time.monotonic() - asked >= PENDING_POLL_S:
                queued, asked = _pending(record), time.monotonic()
            now = queued
            if now is None:
                state = current()
                if state not in waiting:
                    break
                now = (state.value.lower(), None, None)
            if console.is_terminal:
                spinner.update(_pending_text(record.job_id, *now))  # the countdown ticks
            elif now != shown:  # a log file gets each new reason once
                console.print(_pending_text(record.job_id, *now), highlight=False)
            shown = now
            time.sleep(1)
    if not quiet:
        for chunk in follow(log_path(record), lambda: current().finished, poll_s=1.0):
            click.echo(chunk, nl=False)
    while not current().finished:
        time.sleep(1)
    code = record.exit_code if record.exit_code is not None else 1
    note = ""
    if code == 0 and record.state != JobState.COMPLETED.value:
        code = 1  # cancelled while queued: sacct says ExitCode 0:0, but it is no success
        note = f"; hpctf exits {code}: the job did not complete"
    console.print(f"job {record.job_id} {record.state} (exit code {record.exit_code}{note})")
    return code


PENDING_POLL_S = 5.0  # squeue asks slurmctld itself: not every second for every waiting shell


def _pending(record) -> tuple[str, str | None, float | None] | None:
    """("pending", Slurm's reason, expected start) from one squeue call; None once squeue
    no longer says the job is pending (or does not answer)."""
    from .states import JobState

    info = _executor(record).pending(record)
    if info is None or info.state is not JobState.PENDING:
        return None
    return "pending", info.reason, info.expected_start


def _pending_text(job_id: str, state: str, reason: str | None, expected_start: float | None) -> str:
    """'job 42: pending (Resources), expected to start at 12:30:00 (in 5:00)'."""
    message = f"job {job_id}: {state}" + (f" ({reason})" if reason else "")
    if expected_start is not None:
        wait_s = max(0, expected_start - time.time())
        when = time.strftime("%H:%M:%S" if wait_s < 86400 else "%Y-%m-%d %H:%M", time.localtime(expected_start))
        message += f", expected to start at {when} (in {_duration(wait_s)})"
    return message


def _executor(record):
    """The executor that runs ``record`` (Slurm, this machine, ...)."""
    from . import executors

    return executors.for_record(record)


def _open_registry():
    from .registry import Registry

    return Registry()


def _find(registry, job_id: str):
    try:
        return registry.get(job_id)
    except HpctfError as err:
        fail(str(err))


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def status(job_id: str, as_json: bool) -> None:
    """State, exit code and placement of one run."""
    from .runs import refresh

    registry = _open_registry()
    record = _find(registry, job_id)
    refresh(registry, [record])
    if as_json:
        failure = _node_failure(record)
        click.echo(json.dumps({**record.to_dict(), "failed_nodes": failure["nodes"] if failure else None}))
        return
    from .table import format_table

    rows = [
        (key, getattr(record, key))
        for key in ("job_id", "name", "state", "exit_code", "backend", "shape", "nodes", "target", "command", "run_dir")
    ]
    failed = _failed_task(record)
    if failed:
        rows.insert(
            4,
            (
                "failed task",
                f"task {failed[0]} exited with {failed[1]} (hpctf logs {record.job_id} --task {failed[0]} --err)",
            ),
        )
    failure = _node_failure(record)
    if failure:
        named = "; ".join(f"{node} ({reason})" if reason else node for node, reason in failure["nodes"])
        rows.insert(4, ("failed nodes", named or f"unknown: {failure['unknown']}"))
    restarts = _restarts_row(record)
    if restarts:
        rows.insert(3, ("restarts", restarts))
    rows += [("submitted", _when(record.submitted)), ("duration", _duration(record.duration))]
    click.echo(format_table(None, rows), nl=False)


def _restarts_row(record) -> str | None:
    """The status line for requeue jobs and jobs Slurm requeued: '1 (2 attempts; ...)'."""
    spec = json.loads(record.spec or "{}")
    restarts = record.restarts or 0
    if not restarts and not spec.get("requeue"):
        return None
    text = f"{restarts} ({restarts + 1} attempt{'s' if restarts else ''}"
    if spec.get("requeue") and _executor(record).can_requeue:
        from .spec import DEFAULT_MAX_RESTARTS

        limit = spec.get("max_restarts")
        text += f"; requeues itself at most {DEFAULT_MAX_RESTARTS if limit is None else limit} time(s)"
    return text + ")"


def _node_failure(record) -> dict | None:
    from .exits import failed_nodes

    return failed_nodes(record.log_dir, record.job_id) if record.state == "NODE_FAIL" else None


def _failed_task(record):
    from .exits import first_failed_task

    return first_failed_task(record.log_dir, record.job_id) if record.state not in ("PENDING", "RUNNING") else None


@cli.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="keep printing until the job ends")
@click.option("--task", type=int, default=0, show_default=True, help="task (rank) whose log to show")
@click.option("--err", is_flag=True, help="standard error instead of output")
def logs(job_id: str, follow: bool, task: int, err: bool) -> None:
    """Print a run's log (task 0's output by default)."""
    from .runs import follow as follow_file
    from .runs import log_path, read_log, refresh
    from .states import JobState

    stream = "err" if err else "out"
    registry = _open_registry()
    record = _find(registry, job_id)
    if not follow:
        try:
            click.echo(read_log(record, task, stream), nl=False)
        except HpctfError as error:
            fail(str(error))
        return

    def finished() -> bool:
        refresh(registry, [record])
        return JobState.from_slurm(record.state).finished

    for chunk in follow_file(log_path(record, task, stream), finished, poll_s=1.0):
        click.echo(chunk, nl=False)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel a run (every task of it)."""
    from .runs import cancel as cancel_run

    registry = _open_registry()
    record = _find(registry, job_id)
    try:
        cancel_run(record)
    except HpctfError as err:
        fail(str(err))
    click.echo(
        json.dumps({"job_id": record.job_id, "cancelled": True}) if as_json else f"cancelled job {record.job_id}"
    )


@cli.command("ls")
@click.option("--json", "as_json", is_flag=True)
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="newest N runs (0: all)")
def list_runs(as_json: bool, limit: int) -> None:
    """Past and current runs, newest first."""
    from .runs import refresh

    registry = _open_registry()
    records = list(registry.runs(limit=limit or None))
    refresh(registry, records)
    if as_json:
        # The full spec is in `hpctf status --json`; a listing of 10,000 runs stays small.
        click.echo(json.dumps([r.to_dict(with_spec=False) for r in records]))
        return
    from .table import format_table

    rows = [
        (r.job_id, r.name, r.backend, r.shape, r.state, r.exit_code, _when(r.submitted), _duration(r.duration))
        for r in records
    ]
    click.echo(
        format_table(("JOB", "NAME", "BACKEND", "SHAPE", "STATE", "EXIT", "SUBMITTED", "DURATION"), rows), nl=False
    )


# ---------------------------------------------------------------------------------------
# Preflight
# ---------------------------------------------------------------------------------------

# The doctor brings its own code (hpctf/job/probe.py): the options about the code do not apply.
DOCTOR_SKIPS = ("entry_script", "script_args", "source_dir", "log_dir")


def doctor_options(command: Callable) -> Callable:
    """The job options of `submit` (the shape), less those about the code."""
    for option in reversed(JOB_OPTIONS):
        if _param(option).name not in DOCTOR_SKIPS:
            command = option(command)
    return command


@cli.command()
@doctor_options
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option(
    "--timeout",
    type=float,
    default=600,
    show_default=True,
    help="seconds to wait for the doctor job(s), queueing included",
)
@click.option(
    "--other-launcher/--no-other-launcher",
    default=True,
    show_default=True,
    help="mpi backend: also try the launcher the job does not use",
)
def doctor(as_json: bool, timeout: float, other_launcher: bool, **options: Any) -> None:
    """Preflight: run a small job of this shape and check what distributed training needs.

    Exit code 0 when every check passes (warnings allowed), 1 when one fails.
    """
    from . import doctor as preflight

    with user_errors(), preflight.probe_folder() as source:
        options.update(entry_script=preflight.PROBE_NAME, source_dir=source, script_args=(), log_dir=None)
        spec = spec_from_options(options)
        say = None if as_json else (lambda message: click.echo(f"hpctf doctor: {message}", err=True))
        result = preflight.run(
            spec,
            template_dirs=_template_dirs(options),
            other_launcher=other_launcher,
            timeout_s=timeout,
            progress=say,
            source=source,
        )
    click.echo(json.dumps(result.to_dict()) if as_json else preflight.format_report(result), nl=as_json)
    sys.exit(0 if result.ok else 1)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# ---------------------------------------------------------------------------------------
# Compute targets
# ---------------------------------------------------------------------------------------


def _load_targets():
    from .targets import load_config

    try:
        return load_config()
    except HpctfError as err:
        fail(str(err))


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def targets(ctx: click.Context, as_json: bool) -> None:
    """List the compute targets (site profiles) jobs can name with --target."""
    if ctx.invoked_subcommand is not None:
        return
    from .targets import get_target, user_config_file

    config = _load_targets()
    default = get_target(None, config).name
    if as_json:
        click.echo(
            json.dumps(
                {
                    "default": default,
                    "files": [str(f) for f in config.files],
                    "targets": [t.describe() for t in config.targets.values()],
                }
            )
        )
        return
    from .table import format_table

    rows = []
    for t in config.targets.values():
        gpus = (
            ":".join(
                [
                    t.gres_name,
                    *([t.gpu_type] if t.gpu_type else []),
                    *([str(t.gpus_per_node)] if t.gpus_per_node else []),
                ]
            )
            if (t.gpu_type or t.gpus_per_node)
            else ""
        )
        extra = ", ".join(
            filter(
                None,
                [
                    f"modules {' '.join(t.modules)}" if t.modules else "",
                    f"{t.container_runtime or 'apptainer'} {t.container_image}"
                    if t.container_image
                    else (t.container_runtime or ""),
                    f"env cache {t.env_cache}" if t.env_cache else "",
                ],
            )
        )
        rows.append(
            (
                "*" if t.name == default else "",
                t.name,
                t.executor,
                t.partition or "",
                gpus,
                t.time or "",
                extra,
                t.source,
            )
        )
    click.echo(
        format_table(("", "TARGET", "RUNS ON", "PARTITION", "GPUS", "TIME", "ENVIRONMENT", "DEFINED IN"), rows),
        nl=False,
    )
    if not config.files:
        click.echo(f"(only the built-in targets: define your own in {user_config_file()} or ./hpctf.toml)")


@targets.command("check")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def targets_check(name: str | None, as_json: bool) -> None:
    """Compare target NAME (default: the default target) with the live cluster."""
    from .targetcheck import MISMATCH, check_target
    from .targets import get_target

    config = _load_targets()
    try:
        target = get_target(name, config)
    except HpctfError as err:
        fail(str(err))
    findings = check_target(target)
    bad = [f for f in findings if f.status == MISMATCH]
    if as_json:
        click.echo(json.dumps({"target": target.name, "ok": not bad, "findings": [f.to_dict() for f in findings]}))
    else:
        from .table import format_table

        click.echo(f"target {target.name} ({target.source})")
        click.echo(
            format_table(("CHECK", "STATUS", "DETAIL"), [(f.check, f.status, f.detail) for f in findings]), nl=False
        )
        click.echo(f"{len(bad)} mismatch(es)" if bad else "the cluster matches the profile")
    sys.exit(1 if bad else 0)


def main() -> None:
    cli(prog_name="hpctf")


if __name__ == "__main__":
    main()
