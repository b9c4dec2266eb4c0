"""The multi-worker example: 2 workers on 2 nodes, no parameter servers.

python examples/multi_worker/estimator.py
"""

from pathlib import Path

import hpctf

estimator = hpctf.TensorFlow(
    source_directory=Path(__file__).parent,
    entry_script="train.py",
    distributed_backend="ps",
    parameter_server_count=0,
    worker_count=2,
    node_count=2,
    time="10",
)

if __name__ == "__main__":
    job = hpctf.submit(estimator)
    print(f"submitted job {job.job_id}; waiting...")
    print(f"exit code {job.result()}")
    print(job.stdout())
