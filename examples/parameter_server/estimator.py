"""The parameter-server example: 1 ps + 2 workers + a chief on 3 nodes.

python examples/parameter_server/estimator.py
"""

from pathlib import Path

import hpctf

estimator = hpctf.TensorFlow(
    source_directory=Path(__file__).parent,
    entry_script="train.py",
    distributed_backend="ps",
    node_count=3,
    parameter_server_count=1,
    worker_count=2,
    chief=True,
    time="10",
)

if __name__ == "__main__":
    job = hpctf.submit(estimator)
    print(f"submitted job {job.job_id}; waiting...")
    print(f"exit code {job.result()}")
    print(job.stdout())
