"""The Horovod example on 2 nodes x 2 processes:  python examples/horovod/estimator.py"""

from pathlib import Path

import hpctf

estimator = hpctf.TensorFlow(
    source_directory=Path(__file__).parent,
    entry_script="train.py",
    script_params={"--epochs": 20},
    distributed_backend="mpi",
    node_count=2,
    process_count_per_node=2,
    time="10",
)

if __name__ == "__main__":
    job = hpctf.submit(estimator)
    print(f"submitted job {job.job_id}; waiting...")
    print(f"exit code {job.result()}")
    print(job.stdout())
