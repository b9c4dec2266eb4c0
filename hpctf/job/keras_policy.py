"""Which Keras ``tf.keras`` is in a job's tasks: Keras 3, or the legacy tf-keras (Keras 2).

TensorFlow 2.16 and later make ``tf.keras`` Keras 3, unless ``TF_USE_LEGACY_KERAS=1`` is
set before TensorFlow is imported and the ``tf-keras`` package is installed; then
``tf.keras`` is tf-keras. The code users already have for distributed training needs the
legacy one:

- Horovod's Keras layer (``horovod.tensorflow.keras``: ``DistributedOptimizer``,
  ``compile(..., experimental_run_tf_function=False)``, its callbacks), and
  ``hvd.DistributedGradientTape`` / ``opt.variables()`` in custom loops: Keras 3's
  ``compile`` refuses that argument, its variables and optimizers lack what Horovod calls.
  Horovod is no longer released upstream; 0.28.1 will not learn Keras 3.
- ``ParameterServerStrategy`` with ``Model.fit``, and ``MultiWorkerMirroredStrategy``
  with ``Model.fit`` on several workers: Keras 3 fails (keras-team/keras#20585).

So hpctf's policy (the estimator's ``keras`` field):

- ``"auto"`` (default): tasks of the ``mpi`` and ``ps`` backends get
  ``TF_USE_LEGACY_KERAS=1`` when tf-keras is importable by the task's Python and the
  variable is not set already (by ``environment_variables`` or the submitting shell, which
  sbatch passes on). Single-process jobs keep TensorFlow's default (Keras 3), where
  everything works.
- ``"legacy"``: ``TF_USE_LEGACY_KERAS=1`` in every task; a task whose Python lacks
  tf-keras stops with an error that says how to install it.
- ``"3"``: ``TF_USE_LEGACY_KERAS=0`` in every task: Keras 3 whatever the environment says.

A script that imports ``keras`` itself gets Keras 3 in every case: the variable only
changes what ``tf.keras`` is.

Standard library only: this runs in :mod:`hpctf.runtime` (:mod:`hpctf.job.bootstrap`), at the start of every task.
"""

from __future__ import annotations

from collections.abc import Mapping

from .taskenv import RuntimeSetupError

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
MODES = ("auto", "legacy", "3")
# The backends whose users' code needs the legacy Keras (see above).
LEGACY_BACKENDS = ("mpi", "ps")


class KerasPolicyError(RuntimeSetupError):
    """The task cannot get the Keras its job asks for."""


def runtime_mode(keras: str, backend: str) -> str | None:
    """The ``--keras`` option ``python -m hpctf.runtime`` gets for a job, or None (no
    option: TensorFlow's own default, for single-process jobs under ``"auto"``)."""
    if keras == "auto" and backend not in LEGACY_BACKENDS:
        return None
    return keras


def tf_keras_installed() -> bool:
    """Whether this Python can import ``tf_keras``, without importing it (a path lookup)."""
    from importlib.machinery import PathFinder

    return PathFinder.find_spec("tf_keras") is not None


def keras_environment(mode: str, env: Mapping[str, str], installed: bool | None = None) -> dict[str, str]:
    """The variables a task gets for ``mode`` (see the module's docstring); pure but for
    the tf-keras lookup, which ``installed`` replaces."""
    if mode not in MODES:
        raise KerasPolicyError(f"--keras={mode!r}: must be one of {', '.join(MODES)}")
    if mode == "3":
        return {LEGACY_KERAS_ENV: "0"}
    if mode == "auto" and env.get(LEGACY_KERAS_ENV) is not None:
        return {}  # the user (spec or shell) decided
    if installed is None:
        installed = tf_keras_installed()
    if installed:
        return {LEGACY_KERAS_ENV: "1"}
    if mode == "legacy":
        import sys

        raise KerasPolicyError(
            f"keras='legacy' needs the tf-keras package in the job's Python ({sys.executable}): "
            "pip install 'tf-keras~=X.Y.0' with X.Y the TensorFlow version (with --no-deps where the "
            "TensorFlow package is tensorflow-cpu), or use keras='auto' or '3'"
        )
    return {}  # "auto" without tf-keras: tf.keras stays TensorFlow's default
