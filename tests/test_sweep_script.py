"""A sweep's job script (issue 18): the job array, each element's ask, tell and (with
early stopping) watcher, for every backend. Snapshot-tested, and each must pass `bash -n`,
shellcheck and, on the test cluster, `sbatch --test-only`; tests/test_sweep_cluster.py
runs them for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpctf.errors import HpctfError
from hpctf.render import JobPaths, render_script
from hpctf.sweep.config import SweepConfig

from .conftest import bash_n, shellcheck
from .test_render import machine_neutral

SWEEP_DIR = Path("/shared/hpctf/runs/20261203-120000-train-abc123")
SWEEP_PATHS = JobPaths(workdir=SWEEP_DIR / "code", log_dir=SWEEP_DIR / "logs", run_dir=SWEEP_DIR, array=True)
SPACE = ("lr=loguniform(0.0001, 0.1)", "--batch-size=choice(32, 64)", "opt=choice('adam', 'two words')")

# name -> (estimator fields, sweep settings)
SWEEP_CASES: dict[str, tuple[dict, dict]] = {
    "single-random": (dict(), dict(trials=12, parallel=3)),
    "single-gpu-median": (dict(use_gpu=True), dict(trials=20, parallel=4, early_stop="median", goal="max")),
    "mpi-srun-2node-tpe": (
        dict(distributed_backend="mpi", node_count=2, process_count_per_node=2, script_params={"--epochs": 3}),
        dict(trials=8, sampler="tpe"),
    ),
    "mpi-mpirun-1node-hyperband": (
        dict(distributed_backend="mpi", launcher="mpirun", process_count_per_node=2),
        dict(trials=9, parallel=3, early_stop="hyperband"),
    ),
    "ps-2node-grid-requeue-median": (
        dict(
            distributed_backend="ps",
            node_count=2,
            parameter_server_count=1,
            worker_count=2,
            requeue=True,
            time="1:00:00",
        ),
        dict(sampler="grid", early_stop="median", params=("--batch-size=choice(32, 64)", "opt=choice('a', 'b', 'c')")),
    ),
}


def sweep_case(name: str) -> SweepConfig:
    settings = {"params": SPACE, "metric": "val_loss", **SWEEP_CASES[name][1]}
    return SweepConfig(**settings).checked()


def render_sweep(make_spec, name: str, paths: JobPaths = SWEEP_PATHS) -> str:
    return render_script(make_spec(**SWEEP_CASES[name][0]), paths, sweep=sweep_case(name))


@pytest.mark.parametrize("name", sorted(SWEEP_CASES))
def test_sweep_script_snapshot(make_spec, snapshot, name):
    assert machine_neutral(render_sweep(make_spec, name)) == snapshot


@pytest.mark.parametrize("name", sorted(SWEEP_CASES))
def test_sweep_script_is_valid_bash_and_shellcheck_clean(make_spec, name):
    script = render_sweep(make_spec, name)
    assert bash_n(script).returncode == 0, bash_n(script).stderr
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", sorted(SWEEP_CASES))
def test_a_sweep_is_one_array_whose_elements_ask_tell_and_keep_their_own_files(make_spec, name):
    script = render_sweep(make_spec, name)
    config = sweep_case(name)
    [array] = re.findall(r"^#SBATCH --array=(\S+)$", script, re.M)
    assert array == config.array and array.startswith(f"0-{config.trials - 1}")
    assert "#SBATCH --output=/shared/hpctf/runs/20261203-120000-train-abc123/logs/%A_%a_0_log.out" in script
    # The element asks before the launch, and every launch passes the trial's words last.
    ask = script.index("hpctf.sweep.trial ask")
    launch = script.index('"$PYTHON" -m hpctf.runtime')
    assert ask < launch and script.count("hpctf.sweep.trial ask") == 1
    assert re.search(r'"\$PYTHON" train\.py[^\n]*"\$\{HPCTF_TRIAL_ARGS\[@\]\}"( &)?$', script, re.M)
    # It tells from its EXIT trap, before the exit-status file (named after the element).
    trap = script[script.index("hpctf_exit() {") : script.index("trap 'hpctf_exit")]
    assert trap.index("hpctf.sweep.trial tell") < trap.index('"$HPCTF_LOG_DIR/${HPCTF_JOB_ID}_exitcode"')
    for variable in ("HPCTF_OUTPUT_DIR", "HPCTF_TENSORBOARD_DIR", "HPCTF_METRICS_DIR"):
        assert re.search(rf'^export {variable}="\$HPCTF_TRIAL_DIR"/\w+$', script, re.M), variable
    watched = config.early_stop != "none"
    assert ("hpctf.sweep.trial watch" in script) == watched
    if watched:
        assert script.index("hpctf.sweep.trial watch") > launch
        assert '[ -e "$HPCTF_TRIAL_DIR.pruned" ]' in script


def test_a_requeued_sweep_element_signals_the_batch_shell_and_is_not_requeued_when_pruned(make_spec):
    script = render_sweep(make_spec, "ps-2node-grid-requeue-median")
    assert '--pid "$$" --signal USR1 &' in script  # its trap checkpoints the tasks first
    assert script.index('[ -e "$HPCTF_TRIAL_DIR.pruned" ]') < script.index('if scontrol requeue "$SLURM_JOB_ID"')


def test_a_sweep_script_needs_its_folder(make_spec):
    with pytest.raises(HpctfError, match="a sweep's script needs its folder"):
        render_script(
            make_spec(), JobPaths(Path("/shared/p"), Path("/shared/p/logs")), sweep=sweep_case("single-random")
        )


@pytest.mark.slurm
@pytest.mark.parametrize("name", sorted(SWEEP_CASES))
def test_every_sweep_script_passes_sbatch_test_only(slurm, shared_dir, make_spec, name):
    paths = JobPaths(workdir=shared_dir / "code", log_dir=shared_dir / "logs", run_dir=shared_dir, array=True)
    for folder in (paths.workdir, paths.log_dir):
        folder.mkdir()
    script = shared_dir / "job.sbatch"
    script.write_text(render_sweep(make_spec, name, paths))
    done = slurm.run("sbatch", "--test-only", str(script), check=False)
    assert done.returncode == 0 and "to start at" in done.stderr, done.stderr
