"""The single-process example, submitted from Python:  python examples/single/estimator.py"""

from pathlib import Path

import hpctf

estimator = hpctf.TensorFlow(
    source_directory=Path(__file__).parent,
    entry_script="train.py",
    script_params={"--epochs": 20, "--batch-size": 32},
    time="10",
)

if __name__ == "__main__":
    job = hpctf.submit(estimator)
    print(f"submitted job {job.job_id}; waiting...")
    print(f"exit code {job.result()}")
    print(job.stdout())
