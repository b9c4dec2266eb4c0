"""Tune the single example's learning rate and batch size, from Python:

    python examples/sweep/sweep.py

Eight trials, two at a time, each a whole run of examples/single/train.py for five epochs;
TPE picks each trial's values from the ones told before it, and the median rule stops a
trial whose validation accuracy falls behind the others' at the same epoch.
The same from the command line: hpctf sweep --space examples/sweep/sweep.toml
examples/single/train.py --epochs 5
"""

from pathlib import Path

import hpctf

estimator = hpctf.TensorFlow(
    source_directory=Path(__file__).resolve().parent.parent / "single",
    entry_script="train.py",
    script_params={"--epochs": 5},
    time="10",
)
sweep = hpctf.Sweep(
    estimator,
    {"--learning-rate": "loguniform(1e-3, 3e-2)", "--batch-size": [16, 32, 64]},
    metric="val_accuracy",
    goal="max",
    trials=8,
    parallel=2,
    sampler="tpe",
    early_stop="median",
)

if __name__ == "__main__":
    run = sweep.submit()
    print(f"submitted sweep {run.job_id}; waiting (hpctf sweep status {run.job_id})...")
    run.wait()
    for trial in run.trials():
        print(trial.job_id, trial.state, trial.params, trial.value)
    best = run.best()
    print(f"best: {best.params} val_accuracy={best.value} (kept in {best.run_dir}/outputs)")
