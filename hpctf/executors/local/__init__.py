"""The local executor: the same job script, run on this machine with ``bash``.

Starting a run is :func:`hpctf.executors.local.launch.start`; following it,
:class:`hpctf.executors.local.handle.LocalRun`.
"""

from __future__ import annotations

from ...errors import HpctfError
from .. import OK, Executor, Finding, Observation


class LocalExecutor(Executor):
    name = "local"
    runs_here = True

    def adapt(self, spec, target):
        if spec.container == "pyxis":
            raise HpctfError(
                f"compute_target={target.name!r} runs jobs on this machine, where there is no Pyxis "
                "(srun --container-image): use container_runtime='apptainer'"
            )
        if spec.distributed_backend == "ps" and spec.port_base is None:
            from .launch import free_port_base

            spec = spec.with_changes(port_base=free_port_base(spec.task_count))
        return spec

    def start(self, plan) -> str:
        from . import launch

        job_id = launch.new_job_id()
        launch.start(plan.script_path, plan.run_dir, plan.paths.log_dir, job_id, plan.spec.name, plan.spec.task_count)
        return job_id

    def handle(self, record):
        from .handle import LocalRun

        return LocalRun(folder=record.log_dir, job_id=record.job_id, tasks=range(record.task_count))

    def observe(self, record, job) -> Observation:
        return Observation(job.state, {"NodeList": "localhost"}, None)

    def check_target(self, target) -> list:
        return [Finding("executor", OK, "runs on this machine: no cluster to compare with")]
