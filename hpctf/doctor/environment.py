"""The software checks: TensorFlow (and Horovod for ``mpi``) import on every node, in the
same versions, and which Keras ``tf.keras`` is in the tasks."""

from __future__ import annotations

from .hints import SAME_ENVIRONMENT, first_of
from .model import FAIL, NOT_STARTED, PASS, SKIP, WARN, Check, JobResult, Shape

# What to change, by what went wrong importing the stack on a node.
IMPORT_CRASHED = (
    "importing TensorFlow crashed the interpreter: a TensorFlow build for other CPUs "
    "(AVX) or a broken install; install it on (or for) these nodes"
)
NO_TENSORFLOW = (
    "install TensorFlow into the job's Python (scripts/install-tf-stack VENV, then "
    "--python VENV/bin/python), or load the site's TensorFlow module (--setup 'module load ...')"
)
NO_HOROVOD = "install Horovod built against this TensorFlow into the job's Python (scripts/install-tf-stack)"
HOROVOD_WITHOUT_MPI = "reinstall Horovod with HOROVOD_WITH_MPI=1 (Open MPI's mpicc on PATH while it builds)"


def environment_check(shape: Shape, result: JobResult) -> Check:
    name = "Python environment"
    envs = {rep["host"]: (rep["env"], rep) for rep in result.reports.values() if rep.get("env")}
    if not envs:
        return Check(name, SKIP, NOT_STARTED)
    horovod = shape.backend == "mpi"
    problems: list[str] = []
    advice: list[str] = []
    versions: dict[tuple, list[str]] = {}
    for host, (env, rep) in sorted(envs.items()):
        found = _import_problem(env, f"{rep.get('python')} on {host}", horovod)
        if found:
            problems.append(found[0])
            advice.append(found[1])
            if not found[2]:
                continue
        key = (env.get("tensorflow"), env.get("horovod") if horovod else None, rep.get("python_version"))
        versions.setdefault(key, []).append(host)
    if len(versions) > 1:
        problems.append(
            "nodes differ: "
            + "; ".join(
                f"TF {k[0]}{', Horovod ' + k[1] if k[1] else ''}, Python {k[2]} on {', '.join(h)}"
                for k, h in versions.items()
            )
        )
        advice.append(SAME_ENVIRONMENT)
    unchecked = sorted({rep["host"] for rep in result.reports.values()} - set(envs))
    if unchecked:
        problems.append(f"not checked on {', '.join(unchecked)} (the import check did not finish there)")
    if problems:
        return Check(name, FAIL, first_of(problems), advice="; ".join(dict.fromkeys(advice)) or None, details=problems)
    (tf, hvd, py), hosts = next(iter(versions.items()))
    python = next(iter(envs.values()))[1].get("python")
    stack = f"TensorFlow {tf}" + (f", Horovod {hvd} (MPI)" if hvd else "")
    return Check(name, PASS, f"{stack} with {python} (Python {py}) on {', '.join(sorted(hosts))}")


def _import_problem(env: dict, where: str, horovod: bool) -> tuple[str, str, bool] | None:
    """What went wrong importing the stack with ``where``'s Python, what to change, and
    whether its versions still count (TensorFlow imported); None: nothing went wrong."""
    if env.get("error"):
        return f"{where}: {env['error']}", IMPORT_CRASHED, False
    if env.get("tensorflow_error"):
        return f"TensorFlow is not importable with {where}: {env['tensorflow_error']}", NO_TENSORFLOW, False
    if horovod and env.get("horovod_error"):
        return f"Horovod is not importable with {where}: {env['horovod_error']}", NO_HOROVOD, True
    if horovod and env.get("horovod_mpi") is False:
        return f"Horovod with {where} was built without MPI", HOROVOD_WITHOUT_MPI, True
    return None


def keras_check(shape: Shape, result: JobResult) -> Check:
    """Which Keras ``tf.keras`` is in the tasks (hpctf's Keras policy at work) and, for
    ``mpi``, whether a step of Keras ``fit`` through Horovod's Keras layer works."""
    name = "Keras"
    envs = {rep["host"]: rep["env"] for rep in result.reports.values() if rep.get("env")}
    seen = {env["keras"] for env in envs.values() if env.get("keras")}
    if not seen:
        return Check(
            name, SKIP, NOT_STARTED if not envs else "not checked: TensorFlow did not import (see 'Python environment')"
        )
    values = {env.get("legacy_keras_env") for env in envs.values()}
    summary = f"tf.keras is {', '.join(sorted(seen))} in the tasks ({_policy(shape, values)})"
    problems: list[str] = []
    advice: list[str] = []
    if len(seen) > 1:
        where = "; ".join(f"{env.get('keras')} on {host}" for host, env in sorted(envs.items()))
        problems.append(f"nodes differ: {where}")
        advice.append(SAME_ENVIRONMENT)
    keras3 = all(k.startswith("keras ") for k in seen)
    _tf_keras_missing(shape, envs, keras3, values, problems, advice)
    detail = _horovod_keras(shape, result, keras3, problems, advice)
    if problems:
        return Check(
            name,
            WARN,
            f"{summary}; {first_of(problems)}",
            advice="; ".join(dict.fromkeys(advice)) or None,
            details=problems,
        )
    return Check(name, PASS, summary + detail)


def _policy(shape: Shape, values: set) -> str:
    """The Keras policy asked for, and the legacy-Keras variable the tasks saw."""
    from ..job.keras_policy import LEGACY_KERAS_ENV, runtime_mode

    mode = runtime_mode(shape.keras, shape.backend)
    policy = f"keras={shape.keras!r}" + ("" if mode else " (TensorFlow's default for one process)")
    return (
        policy
        + ", "
        + ", ".join(
            f"{LEGACY_KERAS_ENV}={v}" if v is not None else f"{LEGACY_KERAS_ENV} unset" for v in sorted(values, key=str)
        )
    )


def _tf_keras_missing(
    shape: Shape, envs: dict, keras3: bool, values: set, problems: list[str], advice: list[str]
) -> None:
    """Adds the problem of a backend that needs Keras 2 getting Keras 3 (no tf-keras)."""
    from ..job.keras_policy import LEGACY_BACKENDS

    if keras3 and shape.backend in LEGACY_BACKENDS and shape.keras == "auto" and values == {None}:
        tf_version = next(iter(envs.values())).get("tensorflow", "X.Y")
        problems.append(
            "tf-keras is not installed in the job's Python, so tf.keras is Keras 3: Horovod's Keras layer "
            "and Model.fit under ParameterServerStrategy or MultiWorkerMirroredStrategy fail with it"
        )
        advice.append(
            f"pip install --no-deps 'tf-keras~={'.'.join(tf_version.split('.')[:2])}.0' into the job's Python "
            "(scripts/install-tf-stack does), or write those scripts for Keras 3 and pass --keras 3"
        )


def _horovod_keras(shape: Shape, result: JobResult, keras3: bool, problems: list[str], advice: list[str]) -> str:
    """``mpi``: adds the problems of training through Horovod's Keras layer; returns what
    to add to the summary when it worked."""
    if shape.backend == "mpi" and shape.keras == "3":
        return "; Horovod's Keras layer not tried (it needs tf-keras, and keras='3' was asked for)"
    if shape.backend != "mpi":
        return ""
    from ..job.probe import PHASE_KERAS

    layer = {rank: rep.get("horovod_keras") for rank, rep in result.reports.items()}
    died = sorted(r for r, rep in result.reports.items() if rep.get("phase") == PHASE_KERAS)
    errors = {r: v["error"] for r, v in layer.items() if v and v.get("error")}
    if died:
        problems.append(f"ranks {', '.join(map(str, died))} died or hung training through Horovod's Keras layer")
    for rank, error in sorted(errors.items()):
        problems.append(f"rank {rank}: Horovod's Keras layer: {error}")
    if errors or died:
        advice.append(_horovod_keras_advice(" ".join(errors.values()), keras3, result))
    elif layer and all(v and "loss" in v for v in layer.values()):
        return (
            f"; Horovod's Keras layer trains on {len(layer)} ranks "
            "(DistributedOptimizer, broadcast, metric-average and warm-up callbacks)"
        )
    return ""


def _horovod_keras_advice(errors: str, keras3: bool, result: JobResult) -> str:
    if "get_value" in errors:
        return (
            "this Horovod takes its Keras backend from `import keras` (Keras 3), not from tf.keras: "
            "reinstall it with hpctf's patch (scripts/install-tf-stack applies scripts/horovod-patches/)"
        )
    if "experimental_run_tf_function" in errors or keras3:
        return (
            "Horovod's Keras layer needs tf-keras (Keras 2): install tf-keras into the job's Python and "
            "keep --keras auto (or legacy); code written for Keras 3 can use hvd.grouped_allreduce instead"
        )
    return f"read the ranks' logs in {result.run_dir}/logs"
