"""What a job handle (:class:`~hpctf.executors.slurm.watch.SlurmRun`,
:class:`~hpctf.executors.local.handle.LocalRun`) knows of its run folder.

A handle keeps one path: submitit's ``paths.folder``, the folder its logs are in. hpctf
puts every run's logs in ``<run folder>/logs`` (:attr:`hpctf.runpaths.RunPaths.logs`), so
the rest of the run folder follows from that path alone. It is all a handle built by hand
(``SlurmRun(folder, job_id)``), by ``hpctf.attach`` or by ``pickle.loads`` has: submitit
pickles a handle's ``__dict__``, and nothing is added to it here.
"""

from __future__ import annotations

from pathlib import Path

from .runpaths import RunPaths


class RunFolder:
    """Mixed into the handle classes (submitit jobs, which have ``paths``): ``job.run_dir``,
    ``job.outputs`` and ``job.metrics()``."""

    @property
    def run_dir(self) -> Path:
        """The run folder (``$HPCTF_HOME/runs/<stamp>-<name>-<hex>``)."""
        return Path(self.paths.folder).parent

    @property
    def outputs(self) -> Path:
        """The run's outputs folder, the job's ``$HPCTF_OUTPUT_DIR``: models, checkpoints,
        SavedModels. It exists once the job script has started."""
        return RunPaths(self.run_dir).outputs

    def metrics(self, as_frame: bool | None = None):
        """Every logged point (``hpctf.log_metric``, TensorBoard scalars): a pandas DataFrame
        (columns name, step, value, rank, time) where pandas is installed, else a list of
        :class:`~hpctf.metrics.Row`. ``as_frame=True`` insists on the DataFrame, ``False``
        on the rows."""
        from .metrics.handle import rows_or_frame
        from .metrics.read import read_run

        return rows_or_frame(read_run(self.run_dir), as_frame)
