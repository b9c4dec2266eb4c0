"""The rendered scripts the suite guards: each is snapshot-tested, run through `bash -n`
and shellcheck, run for real against stand-ins for srun, mpirun and the container
runtimes (test_script_bodies.py), and (with the test cluster up) `sbatch --test-only`.

Shapes stay inside the test cluster (3 nodes x 4 CPUs x 2 GPUs of type "tesla").
A case's "target" entry is a site profile (hpctf.targets.Target fields) it renders with.
"""

from __future__ import annotations

from pathlib import Path

from hpctf.targets import Target

SITE_TEMPLATES = Path(__file__).resolve().parent.parent / "examples" / "site" / "templates"

RENDER_CASES: dict[str, dict] = {
    "single-cpu": dict(),
    "single-gpu": dict(use_gpu=True),
    "single-2gpu-typed": dict(gpus_per_node=2, gpu_type="tesla", time="1:00:00", partition="debug"),
    "single-slurm-options": dict(
        job_name="digits run #1",
        memory="1000M",
        cpus_per_task=2,
        time="0-00:30",
        exclusive=False,
        environment_variables={"TF_CPP_MIN_LOG_LEVEL": "2", "GREETING": 'it\'s "quoted" $HOME'},
        setup=['echo "setting up on $(hostname)"', "ulimit -n 4096 || true"],
        sbatch_options={"comment": "nightly; run", "requeue": True},
        script_params={
            "--epochs": 3,
            "--lr": 0.01,
            "--verbose": True,
            "--skip": False,
            "--tag": "$(touch /tmp/hpctf-pwned)",
        },
        arguments=["; rm -rf ~", "`id`"],
    ),
    "single-pip": dict(pip_packages=["six==1.16.0", "tomli>=2"]),
    "single-conda": dict(conda_packages=["scikit-learn"]),
    "mpi-srun-1node-cpu": dict(distributed_backend="mpi", process_count_per_node=2),
    "mpi-srun-2node-cpu": dict(distributed_backend="mpi", node_count=2, process_count_per_node=2),
    "mpi-srun-2node-gpu": dict(distributed_backend="mpi", node_count=2, process_count_per_node=2, use_gpu=True),
    "mpi-srun-3node-gpu-pmi2": dict(
        distributed_backend="mpi", node_count=3, process_count_per_node=1, gpus_per_node=1, pmi="pmi2"
    ),
    "mpi-mpirun-1node-cpu": dict(distributed_backend="mpi", launcher="mpirun", process_count_per_node=2),
    "mpi-mpirun-2node-cpu": dict(distributed_backend="mpi", launcher="mpirun", node_count=2, process_count_per_node=2),
    "mpi-mpirun-2node-gpu": dict(
        distributed_backend="mpi",
        launcher="mpirun",
        node_count=2,
        process_count_per_node=2,
        use_gpu=True,
        script_params={"--epochs": 2},
    ),
    "ps-1node-cpu": dict(distributed_backend="ps", parameter_server_count=1, worker_count=1),
    "ps-3node-cpu-chief": dict(
        distributed_backend="ps", node_count=3, parameter_server_count=1, worker_count=2, chief=True
    ),
    "ps-3node-gpu-chief": dict(
        distributed_backend="ps", node_count=3, parameter_server_count=1, worker_count=2, chief=True, use_gpu=True
    ),
    "ps-2node-gpu-2ps": dict(
        distributed_backend="ps", node_count=2, parameter_server_count=2, worker_count=2, use_gpu=True, port_base=3000
    ),
    "multi-worker-2node-cpu": dict(distributed_backend="ps", node_count=2, parameter_server_count=0, worker_count=2),
    # Environments, modules, containers and site profiles (issue 7).
    "single-pip-site-cache": dict(
        pip_packages=["requests==2.32.3"],
        use_gpu=True,
        target=dict(env_cache="/shared/hpctf/envs", tensorflow="tensorflow[and-cuda]==2.18.1"),
    ),
    "single-modules-site-setup": dict(
        modules=["cuda/12.2", "openmpi/4.1.5"],
        target=dict(module_paths=["/opt/site/modulefiles"], modules=["gcc/12"], setup=["ulimit -n 4096 || true"]),
    ),
    "single-gpus-per-node-form": dict(gpus_per_node=2, gpu_type="tesla", target=dict(gpu_request="gpus-per-node")),
    "single-target-defaults": dict(
        target=dict(
            partition="debug",
            time="10",
            sbatch_options={"comment": "site default"},
            environment_variables={"SITE": "lab"},
        ),
    ),
    # The README's sample site template (one block of base.sbatch.j2 changed).
    "single-site-template": dict(target=dict(templates=str(SITE_TEMPLATES))),
    "single-apptainer-cpu": dict(container_image="/shared/images/tf-2.18.sif"),
    "mpi-srun-2node-apptainer-gpu": dict(
        distributed_backend="mpi",
        node_count=2,
        process_count_per_node=2,
        use_gpu=True,
        container_image="/shared/images/tf-2.18-horovod.sif",
        container_mounts=["/scratch:/scratch", "/datasets:/data:ro"],
    ),
    "mpi-mpirun-1node-singularity": dict(
        distributed_backend="mpi",
        launcher="mpirun",
        process_count_per_node=2,
        container_image="docker://tensorflow/tensorflow:2.18.0",
        container_runtime="singularity",
    ),
    "mpi-srun-2node-pyxis-gpu": dict(
        distributed_backend="mpi",
        node_count=2,
        process_count_per_node=2,
        use_gpu=True,
        container_image="nvcr.io#nvidia/tensorflow:24.12-tf2-py3",
        container_runtime="pyxis",
    ),
    "ps-2node-apptainer": dict(
        distributed_backend="ps",
        node_count=2,
        parameter_server_count=1,
        worker_count=2,
        container_image="/shared/images/tf-2.18.sif",
    ),
    # Requeue: checkpoint at SIGUSR1 before the time limit, then requeue (issue 8).
    "single-requeue": dict(requeue=True, time="1:00:00"),
    "mpi-mpirun-2node-requeue": dict(
        distributed_backend="mpi",
        launcher="mpirun",
        node_count=2,
        process_count_per_node=2,
        requeue=True,
        max_restarts=5,
        signal_grace=300,
        time="2:00:00",
    ),
}


def split_case(name: str) -> tuple[dict, Target | None]:
    """A case's estimator fields and its site profile (None: the built-in default)."""
    fields = dict(RENDER_CASES[name])
    profile = fields.pop("target", None)
    if profile is None:
        return fields, None
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in profile.items()}
    return fields, Target(name="site", source="tests/cases.py", **values)
