"""Which recorded run a job id means, where one home holds runs of several clusters.

Many sites mount one home directory on several clusters (or keep a test cluster beside
production), and each cluster numbers its jobs on its own: the history may hold job 57 of
``alpha`` and job 57 of ``beta``. Each run records its cluster; a job id means the run of
the cluster this login node talks to, else one it can reach (a site profile's
``cluster``, Slurm's multi-cluster set-up), and a job only another cluster has is
reported as such rather than looked up here, where job 57 is some other job.
"""

from __future__ import annotations

from . import executors
from .errors import HpctfError


class OtherCluster(HpctfError):
    """The job id is in the history, but not of a cluster this machine reaches (or not of
    the cluster asked for)."""


def choose(records: list, job_id: str, cluster: str | None = None, anywhere: bool = False):
    """The run ``job_id`` means among ``records`` (that id's runs, newest first);
    ``cluster``: the one of that cluster; ``anywhere``: another cluster's where this one
    has none (commands that only read the run's files, which the shared home holds)."""
    if cluster is not None:
        mine = [r for r in records if r.cluster == cluster]
        if not mine:
            raise OtherCluster(
                f"--cluster={cluster!r}: no run with job id {job_id!r} on that cluster; "
                f"the history has it on {_names(records)}"
            )
        return mine[0]
    reachable = [r for r in records if executors.for_record(r).reachable(r)]
    if not reachable and not anywhere:
        require_reachable(records[0])
    current = [r for r in reachable if r.cluster == executors.for_record(r).cluster()]
    return (current or reachable or records)[0]


def require_reachable(record) -> None:
    """Refuse to ask about ``record``'s job where it ran on a cluster this machine does not
    reach (``--cluster`` may select such a run: what the history holds is still shown)."""
    place = executors.for_record(record)
    if place.reachable(record):
        return
    raise OtherCluster(
        f"job {record.job_id} was submitted to cluster {record.cluster}; this login node talks to {place.cluster()}. "
        f"Run hpctf on a login node of {record.cluster} (where Slurm's multi-cluster set-up reaches it "
        f'from here, a site profile\'s cluster = "{record.cluster}" lets hpctf ask with --clusters)'
    )


def _names(records: list) -> str:
    return ", ".join(dict.fromkeys(str(r.cluster) for r in records))
