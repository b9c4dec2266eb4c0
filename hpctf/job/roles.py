"""The roles of a parameter-server job's tasks, by task id: pure, no imports at all.

Both sides use it: the estimator (:mod:`hpctf.spec`) to describe a job before it runs,
the bootstrap to give each task its ``TF_CONFIG``; so both agree on which task is which.
"""

# TF's SlurmClusterResolver assigns roles to blocks of ranks in sorted(job names) order;
# using the same order means a job placed by hpctf looks the same as one placed by TF.
ROLE_ORDER = ("chief", "ps", "worker")
# A heterogeneous job (parameter servers on their own nodes) numbers its first component's
# tasks first: the parameter servers, then the chief and workers of the second.
HET_ROLE_ORDER = ("ps", "chief", "worker")


def cluster_roles(ps: int, workers: int, chief: bool = False, het: bool = False) -> list[tuple[str, int]]:
    """(type, index) of every task, by task id (``het``: a heterogeneous job's order)."""
    sizes = {"chief": int(chief), "ps": ps, "worker": workers}
    return [(role, index) for role in (HET_ROLE_ORDER if het else ROLE_ORDER) for index in range(sizes[role])]


def driver_roles(ps: int, chief: bool) -> set[str]:
    """Roles whose exit ends the job; the others serve until told to stop.

    With ParameterServerStrategy the chief drives and ps/workers run
    ``tf.distribute.Server(...).join()``, which never returns.  Without a chief the
    workers drive; without parameter servers (MultiWorkerMirroredStrategy) every task
    drives and nothing needs stopping.
    """
    if ps == 0:
        return {"chief", "worker"}
    return {"chief"} if chief else {"worker"}


def driver_ranks(ps: int, workers: int, chief: bool, het: bool = False) -> list[int]:
    """The task ids of the drivers (:func:`driver_roles`)."""
    drivers = driver_roles(ps, chief)
    return [rank for rank, (role, _) in enumerate(cluster_roles(ps, workers, chief, het)) if role in drivers]
