"""Which ports a parameter-server job's tasks listen on: task i on ``port_base + i``.

Without a ``port_base`` in the spec, each job takes a range of its own, derived from its
job id when its tasks start: two jobs sharing a node (or a network namespace) then do not
both want the same port, as they would with a fixed default such as TF's 2222 or 8888.
Neighbouring job ids get neighbouring, disjoint ranges. The ranges stay below Linux's
ephemeral ports (32768-60999 by default), which the kernel hands to outgoing connections
and which a server then could not bind.

Standard library only, no imports at all: this runs at the start of every task.
"""

DEFAULT_PORT_BASE = 2222  # outside a Slurm job (no job id), e.g. `hpctf tf-config` by hand
JOB_PORT_RANGE = (10000, 32000)


def job_range_slots(tasks: int) -> int:
    """How many disjoint ranges of ``tasks`` ports ``JOB_PORT_RANGE`` holds."""
    low, high = JOB_PORT_RANGE
    return max((high - low) // max(tasks, 1), 1)


def job_port_base(job_id: str | None, tasks: int) -> int:
    """The first port of the job's own range; ``DEFAULT_PORT_BASE`` outside a job."""
    if not job_id or not job_id.isdigit():
        return DEFAULT_PORT_BASE
    return JOB_PORT_RANGE[0] + int(job_id) % job_range_slots(tasks) * max(tasks, 1)
