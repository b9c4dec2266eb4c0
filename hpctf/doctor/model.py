"""What the doctor knows: the shape it expects, what one doctor job left behind, and
each check's verdict; data only, no Slurm."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PROBE_NAME = "hpctf_doctor_probe.py"
DEFAULT_TIME = "10"  # minutes: a short limit schedules sooner (backfill); the probe needs ~1
PROBE_TIMEOUT_S = 150  # a rank stuck in MPI_Init or a connect gives up after this
PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
NOT_STARTED = "not checked: no rank got this far (see 'ranks start')"


@dataclass
class Check:
    name: str
    status: str
    summary: str
    advice: str | None = None
    details: list[str] = field(default_factory=list)


@dataclass
class Shape:
    """What the doctor expects of the job, from the spec that runs (target applied)."""

    backend: str  # "single" | "mpi" | "ps"
    tasks: int
    nodes: int
    tasks_per_node: list[int]
    gpus: int  # per node
    launcher: str  # "srun" | "mpirun"
    pmi: str
    python: str
    roles: list[tuple[str, int]] = field(default_factory=list)  # ps: (type, index) by task id
    port_base: int | None = None  # None: the job's own range, from its job id
    description: str = ""
    keras: str = "auto"  # the spec's Keras policy (hpctf.job.keras_policy)
    # A heterogeneous job (parameter servers on nodes of their own): the components'
    # partitions, [parameter servers', chief's and workers'] (None: the cluster's default).
    het_partitions: list[str | None] | None = None

    @classmethod
    def from_spec(cls, spec: Any, python: str) -> Shape:
        roles: list[tuple[str, int]] = []
        het = spec.heterogeneous
        if spec.distributed_backend == "ps":
            from ..job.roles import cluster_roles

            roles = cluster_roles(spec.parameter_server_count, spec.worker_count, spec.chief, het)
        launcher = spec.mpi_launcher if spec.distributed_backend == "mpi" else "srun"
        return cls(
            backend=spec.backend,
            tasks=spec.task_count,
            nodes=spec.node_count + (spec.ps_nodes if het else 0),
            tasks_per_node=(spec.ps_on_node() if het else []) + spec.tasks_on_node(),
            gpus=spec.gpus,
            launcher=launcher,
            pmi=spec.pmi_plugin,
            python=python,
            roles=roles,
            port_base=spec.port_base,
            description=describe(spec),
            keras=spec.keras,
            het_partitions=[spec.ps_partition or spec.partition, spec.partition] if het else None,
        )

    def component(self, rank: int) -> int | None:
        """A heterogeneous job's component of task ``rank`` (0: parameter servers, 1: the rest)."""
        if self.het_partitions is None or rank >= len(self.roles):
            return None
        return 0 if self.roles[rank][0] == "ps" else 1

    def launch_name(self, launcher: str | None = None) -> str:
        launcher = launcher or self.launcher
        return f"srun --mpi={self.pmi}" if launcher == "srun" and self.backend == "mpi" else launcher


def describe(spec: Any) -> str:
    from ..submission import shape_of

    if spec.heterogeneous:
        gpus = f" {spec.gpus}gpu/node" if spec.gpus else ""
        rest = "+".join([f"{spec.worker_count}w"] + (["chief"] if spec.chief else []))
        ps_part = spec.ps_partition or spec.partition or "default"
        return (
            f"ps {spec.parameter_server_count}ps on {spec.ps_nodes}n ({ps_part})"
            f" + {rest} on {spec.node_count}n{gpus} ({spec.partition or 'default'}), heterogeneous"
        )
    return f"{spec.backend} {shape_of(spec)}"


@dataclass
class JobResult:
    """One doctor job after it ended (or was given up on)."""

    launcher: str
    job_id: str | None = None
    run_dir: str | None = None
    state: str = "NOT SUBMITTED"
    exit_code: int | None = None
    timed_out: bool = False
    reports: dict[int, dict] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # log file name -> its last lines
    error: str | None = None  # why it could not be submitted

    @property
    def log_text(self) -> str:
        return "\n".join(self.logs.values())


@dataclass
class DoctorRun:
    shape: Shape
    checks: list[Check]
    jobs: list[JobResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict:
        primary = self.jobs[0]
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "shape": asdict(self.shape),
            "jobs": [
                {k: getattr(j, k) for k in ("launcher", "job_id", "run_dir", "state", "exit_code", "timed_out")}
                for j in self.jobs
            ],
            "checks": [asdict(c) for c in self.checks],
            "ranks": [rank_row(r, primary.reports[r]) for r in sorted(primary.reports)],
        }


def launcher_id(report: dict) -> str | None:
    """The rank the launcher gave the process (Open MPI's, else Slurm's)."""
    return report.get("ompi_rank") if report.get("ompi_rank") is not None else report.get("slurm_procid")


def rank_row(rank: int, rep: dict) -> dict:
    return {
        "rank": rank,
        "host": rep.get("host"),
        "launcher_id": launcher_id(rep),
        "local_rank": rep.get("local_rank"),
        "role": "/".join(map(str, (rep.get("tf_config") or {}).get("task", {}).values())) or None,
        "cuda_visible_devices": rep.get("cuda_visible_devices"),
    }
