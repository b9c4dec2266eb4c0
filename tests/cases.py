"""The rendered scripts the suite guards: each is snapshot-tested, run through `bash -n`
and shellcheck, and (with the test cluster up) `sbatch --test-only`.

Shapes stay inside the test cluster (3 nodes x 4 CPUs x 2 GPUs of type "tesla").
"""

from __future__ import annotations

RENDER_CASES: dict[str, dict] = {
    "single-cpu": dict(),
    "single-gpu": dict(use_gpu=True),
    "single-2gpu-typed": dict(gpus_per_node=2, gpu_type="tesla", time="1:00:00", partition="debug"),
    "single-slurm-options": dict(
        job_name="digits run #1", memory="1000M", cpus_per_task=2, time="0-00:30", exclusive=False,
        environment_variables={"TF_CPP_MIN_LOG_LEVEL": "2", "GREETING": "it's \"quoted\" $HOME"},
        setup=["echo \"setting up on $(hostname)\"", "ulimit -n 4096 || true"],
        sbatch_options={"comment": "nightly; run", "requeue": True},
        script_params={"--epochs": 3, "--lr": 0.01, "--verbose": True, "--skip": False, "--tag": "$(touch /tmp/hpctf-pwned)"},
        arguments=["; rm -rf ~", "`id`"],
    ),
    "single-pip": dict(pip_packages=["six==1.16.0", "tomli>=2"]),
    "single-conda": dict(conda_packages=["scikit-learn"]),
    "mpi-srun-1node-cpu": dict(distributed_backend="mpi", process_count_per_node=2),
    "mpi-srun-2node-cpu": dict(distributed_backend="mpi", node_count=2, process_count_per_node=2),
    "mpi-srun-2node-gpu": dict(distributed_backend="mpi", node_count=2, process_count_per_node=2, use_gpu=True),
    "mpi-srun-3node-gpu-pmi2": dict(distributed_backend="mpi", node_count=3, process_count_per_node=1, gpus_per_node=1, pmi="pmi2"),
    "mpi-mpirun-1node-cpu": dict(distributed_backend="mpi", launcher="mpirun", process_count_per_node=2),
    "mpi-mpirun-2node-cpu": dict(distributed_backend="mpi", launcher="mpirun", node_count=2, process_count_per_node=2),
    "mpi-mpirun-2node-gpu": dict(distributed_backend="mpi", launcher="mpirun", node_count=2, process_count_per_node=2, use_gpu=True, script_params={"--epochs": 2}),
    "ps-1node-cpu": dict(distributed_backend="ps", parameter_server_count=1, worker_count=1),
    "ps-3node-cpu-chief": dict(distributed_backend="ps", node_count=3, parameter_server_count=1, worker_count=2, chief=True),
    "ps-3node-gpu-chief": dict(distributed_backend="ps", node_count=3, parameter_server_count=1, worker_count=2, chief=True, use_gpu=True),
    "ps-2node-gpu-2ps": dict(distributed_backend="ps", node_count=2, parameter_server_count=2, worker_count=2, use_gpu=True, port_base=3000),
    "multi-worker-2node-cpu": dict(distributed_backend="ps", node_count=2, parameter_server_count=0, worker_count=2),
}
