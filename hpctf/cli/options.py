"""What the commands share: the job options (declared once), the spec they describe,
and how a user's mistake is told (one message, exit 2)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..errors import HpctfError, SpecError
from ..job.keras_policy import MODES as KERAS_MODES

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


def _count(flag: str, name: str, help: str) -> Callable:
    """A count option that defaults to one (``--nodes``, ``--workers``, ...)."""
    return click.option(flag, name, type=int, default=1, show_default=True, help=help)


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
    _count("--nodes", "node_count", "nodes to allocate"),
    _count("--procs-per-node", "process_count_per_node", "MPI processes per node"),
    click.option("--gpus-per-node", type=int, default=None, help="GPUs per node (--gres=gpu:N); implies --use-gpu"),
    click.option("--gpu-type", default=None, help="GPU type in gres.conf (--gres=gpu:TYPE:N)"),
    click.option("--use-gpu", is_flag=True, default=False, help="one GPU per process"),
    _count("--workers", "worker_count", "ps backend: workers"),
    _count("--ps", "parameter_server_count", "ps backend: parameter servers (0: workers only)"),
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
        "--ps-partition",
        default=None,
        help="ps backend: the parameter servers' partition: a heterogeneous job (#SBATCH hetjob), "
        "--partition/--nodes/--gpus-per-node then being the chief's and workers'",
    ),
    click.option(
        "--ps-nodes", "ps_node_count", type=int, default=None, help="ps backend: the parameter servers' own nodes"
    ),
    click.option("--ps-cpus-per-task", type=int, default=None, help="ps backend: CPUs of each parameter server"),
    click.option("--ps-mem", "ps_memory", default=None, help="ps backend: memory per parameter-server node"),
    click.option("--ps-account", default=None, help="ps backend: the parameter servers' account"),
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
        "--secret-env",
        "secret_environment_variables",
        multiple=True,
        metavar="NAME",
        help="NAME of a variable of this environment for every task, never written anywhere (repeatable)",
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
    from ..spec import TensorFlow

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
        secret_environment_variables=list(options["secret_environment_variables"]),
    )
    return TensorFlow(**fields)


def template_dirs(options: dict[str, Any]) -> list[str]:
    return [options["template_dir"]] if options["template_dir"] else []


def param_of(option: Callable) -> click.Parameter:
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
        param = param_of(option)
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


# Everything after the entry script belongs to the script: stop parsing options there.
SCRIPT_STYLE = {"allow_interspersed_args": False}
