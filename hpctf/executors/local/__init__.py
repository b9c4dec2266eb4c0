"""The local executor: the same job script, run on this machine with ``bash``.

Starting a run is :func:`hpctf.executors.local.launch.start` (a sweep's job array:
:func:`~hpctf.executors.local.launch.start_array`, its supervisor
:mod:`hpctf.executors.local.array`); following it, :class:`hpctf.executors.local.handle.LocalRun`.
"""

from __future__ import annotations

from ...errors import HpctfError
from .. import OK, Executor, Finding, Observation


class LocalExecutor(Executor):
    name = "local"
    runs_here = True
    runs_arrays = True  # a supervisor runs the elements, at most --parallel (default 1) at once

    def adapt(self, spec, target, sweep=None):
        if spec.container == "pyxis":
            raise HpctfError(
                f"compute_target={target.name!r} runs jobs on this machine, where there is no Pyxis "
                "(srun --container-image): use container_runtime='apptainer'"
            )
        if spec.heterogeneous:
            # One machine has no partitions to put the parameter servers in; running them
            # beside the workers would not be what the job asks for.
            raise HpctfError(
                f"compute_target={target.name!r} runs jobs on this machine, which has no partitions for "
                "parameter servers of their own: remove ps_partition/ps_node_count (--ps-partition, --ps-nodes)"
            )
        if spec.gpus:
            from .gpus import bind_gpus

            bind_gpus(spec.gpus, target.name)  # refused here, before anything is written
        if spec.distributed_backend == "ps" and sweep is not None:
            # Each element takes a free range of its own when it starts (hpctf.executors.local.array).
            if spec.port_base is not None and (sweep.parallel or 1) > 1:
                raise HpctfError(
                    f"port_base={spec.port_base} with a sweep of {sweep.parallel} trials at once on this machine: "
                    "every trial would listen on the same ports; leave port_base unset"
                )
        elif spec.distributed_backend == "ps" and spec.port_base is None:
            from .launch import free_port_base

            spec = spec.with_changes(port_base=free_port_base(spec.task_count))
        return spec

    def start(self, plan) -> str:
        from ...private import job_umask
        from . import launch
        from .gpus import bind_gpus

        job_id = launch.new_job_id()
        spec = plan.spec
        gpus = bind_gpus(spec.gpus, self.name)  # the same GPUs for every element of a sweep
        umask = job_umask(plan.sharing)  # the local logs and what the job makes: as on Slurm
        if plan.sweep is None:
            launch.start(
                plan.script_path,
                plan.run_dir,
                plan.paths.log_dir,
                job_id,
                spec.name,
                spec.task_count,
                gpus,
                umask=umask,
            )
            return job_id
        ports = spec.task_count if spec.distributed_backend == "ps" and spec.port_base is None else 0
        launch.start_array(
            plan.script_path,
            plan.run_dir,
            plan.paths.log_dir,
            job_id,
            spec.name,
            spec.task_count,
            trials=plan.sweep.trials,
            parallel=plan.sweep.parallel,
            ports=ports,
            gpus=gpus,
            umask=umask,
        )
        return job_id

    def handle(self, record):
        from .handle import LocalRun

        return LocalRun(folder=record.log_dir, job_id=record.job_id, tasks=range(record.task_count))

    def elements(self, record) -> dict:
        from .array import element_fields
        from .handle import session_members
        from .launch import CANCELLED_FILE

        job = self.handle(record)
        sid = job._sid
        over = sid is None or not session_members(sid)
        cancelled = (job.run_dir / CANCELLED_FILE).exists()
        return element_fields(record.log_dir, record.job_id, record.array_size or 0, over=over, cancelled=cancelled)

    def observe(self, record, job) -> Observation:
        state, info = job.state, {"NodeList": "localhost"}
        if record.sweep:  # the array's state from its elements', as on Slurm
            from ...states import JobState
            from ..slurm.arrays import array_fields

            fields = array_fields(self.elements(record), record.array_size)
            if fields is not None:
                info.update(Start=fields["Start"], End=fields["End"])
                if state.finished:
                    state = JobState.from_slurm(fields["State"])
        return Observation(state, info, None)

    def check_target(self, target) -> list:
        return [Finding("executor", OK, "runs on this machine: no cluster to compare with")]
