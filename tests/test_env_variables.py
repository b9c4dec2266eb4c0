"""--env: which names are refused (something sets them per task) and which reach every
rank: MPI, PMIx, UCX and NCCL tuning must, for both MPI launchers on the test cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.errors import SpecError
from hpctf.validation.environment import reserved_variable

PROGRAMS = Path(__file__).resolve().parent / "programs"
HPCTF = str(Path(sys.executable).with_name("hpctf"))

ALLOWED = [
    "OMPI_MCA_btl_tcp_if_include",
    "OMPI_MCA_pml",
    "OMPI_MCA_pmix_base_verbose",  # OMPI_MCA_pmix itself is the launcher's
    "OMPI_MCA_orte_base_help_aggregate",
    "OMPI_ALLOW_RUN_AS_ROOT",
    "PMIX_MCA_gds",
    "PMIX_MCA_ptl_base_verbose",
    "PRTE_MCA_rmaps_default_mapping_policy",
    "UCX_TLS",
    "UCX_NET_DEVICES",
    "NCCL_DEBUG",
    "NCCL_SOCKET_IFNAME",
    "HOROVOD_FUSION_THRESHOLD",
    "MY_SETTING",
    "SLURMX",  # not the SLURM_ prefix
]
REFUSED = {
    "SLURM_JOB_ID": "Slurm",
    "SLURM_X": "Slurm",
    "HPCTF_RANK": "hpctf's job script",
    "TF_CONFIG": "hpctf",
    "CUDA_VISIBLE_DEVICES": "GPUs Slurm gives",
    "OMPI_COMM_WORLD_RANK": "Open MPI's launcher",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "Open MPI's launcher",
    "OMPI_UNIVERSE_SIZE": "Open MPI's launcher",
    "OMPI_MCA_orte_hnp_uri": "Open MPI's launcher",
    "OMPI_MCA_ess_base_vpid": "Open MPI's launcher",
    "OMPI_MCA_pmix": "Open MPI's launcher",
    "PMIX_RANK": "PMIx server",
    "PMIX_NAMESPACE": "PMIx server",
    "PMIX_SERVER_URI41": "PMIx server",
    "PMIX_SERVER_TMPDIR": "PMIx server",
    "PMIX_DSTORE_ESH_BASE_PATH": "PMIx server",
}


@pytest.mark.parametrize("name", ALLOWED)
def test_tuning_and_ordinary_names_are_allowed(make_spec, name):
    assert reserved_variable(name) is None
    make_spec(environment_variables={name: "x"})  # validates


@pytest.mark.parametrize("name, who", REFUSED.items())
def test_names_set_per_task_are_refused_naming_field_value_and_why(make_spec, name, who):
    assert who in reserved_variable(name)
    with pytest.raises(SpecError) as err:
        make_spec(environment_variables={name: "v1"})
    text = str(err.value)
    assert f"environment_variables[{name!r}]" in text and "'v1'" in text, text
    assert who in text and "cannot be overridden" in text and "OMPI_MCA_*" in text, text


# Harmless values that can be told apart from anything the lab sets (its TaskProlog sets
# OMPI_MCA_btl_tcp_if_include for srun's tasks), with a space to check the quoting.
TUNING = {
    "OMPI_MCA_btl_base_verbose": "0",
    "PMIX_MCA_ptl_base_verbose": "0",
    "UCX_LOG_LEVEL": "warn",
    "NCCL_DEBUG": "WARN",
    "MY_SETTING": "two words",
}


@pytest.mark.slurm
@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_tuning_variables_reach_every_rank_of_a_two_node_job(slurm, tmp_path, launcher):
    src = tmp_path / "project"
    src.mkdir()
    shutil.copy(PROGRAMS / "env_probe.py", src / "env_probe.py")
    env = {**slurm.env, "HPCTF_HOME": str(tmp_path / "home")}
    for name in TUNING:
        env.pop(name, None)  # only --env may bring them
    options = [word for name, value in TUNING.items() for word in ("--env", f"{name}={value}")]
    done = subprocess.run(
        [HPCTF, "submit", "--wait", "--time", "5", "--backend", "mpi", "--launcher", launcher]
        + ["--nodes", "2", "--procs-per-node", "2", *options, str(src / "env_probe.py"), *TUNING],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    job_id = done.stdout.split("Submitted job ", 1)[1].split()[0]
    reports = []
    for task in range(4):  # each rank's own log
        log = subprocess.run([HPCTF, "logs", job_id, "--task", str(task)], capture_output=True, text=True, env=env)
        reports += [json.loads(line[4:]) for line in log.stdout.splitlines() if line.startswith("ENV ")]
    by_rank = {r["rank"]: r for r in reports}
    assert sorted(by_rank) == [0, 1, 2, 3], done.stdout
    assert len({r["host"] for r in by_rank.values()}) == 2, by_rank  # two nodes, whichever were free
    for report in by_rank.values():
        assert report["sum"] == 6 and report["env"] == TUNING, report
