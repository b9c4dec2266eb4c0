"""The local target's GPUs: what this machine has (CUDA_VISIBLE_DEVICES, nvidia-smi -L,
the driver's /proc entries), the devices a run is given, and the refusal of a request for
more than there are. A real GPU: scripts/gpu-check run, on a lent GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpctf.errors import HpctfError
from hpctf.executors.local import gpus
from hpctf.executors.local.gpus import bind_gpus, machine_gpus

HPCTF = str(Path(sys.executable).with_name("hpctf"))


@pytest.fixture
def no_driver(monkeypatch, tmp_path):
    """No nvidia-smi on PATH and no driver entries: a machine without GPUs."""
    monkeypatch.setattr(gpus, "NVIDIA_PROC", tmp_path / "no-driver")
    monkeypatch.setattr(gpus.shutil, "which", lambda name: None)


def test_cuda_visible_devices_is_what_a_run_may_have(no_driver):
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": "3,5"})[0] == ["3", "5"]
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"})[0] == ["GPU-aa", "GPU-bb"]
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": ""})[0] == []
    assert machine_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,2"})[0] == ["1"]  # CUDA stops at -1
    assert bind_gpus(1, "local", {"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3"]
    assert bind_gpus(0, "local", {}) == []


def test_nvidia_smi_lists_the_gpus(monkeypatch, tmp_path, no_driver):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-2)'\n")
    smi.chmod(0o755)
    monkeypatch.setattr(gpus.shutil, "which", lambda name: str(smi))
    assert machine_gpus({}) == (["0", "1"], "nvidia-smi -L")


def test_the_driver_entries_without_nvidia_smi(monkeypatch, tmp_path, no_driver):
    (tmp_path / "no-driver" / "0000:17:00.0").mkdir(parents=True)
    assert machine_gpus({})[0] == ["0"]


def test_more_gpus_than_the_machine_has_are_refused(no_driver):
    with pytest.raises(HpctfError) as err:
        bind_gpus(4, "local", {"CUDA_VISIBLE_DEVICES": "3,5"})
    assert str(err.value) == (
        "gpus_per_node=4: compute_target='local' runs jobs on this machine, which has 2 GPUs "
        "(CUDA_VISIBLE_DEVICES='3,5': 3,5): ask for at most 2 [--gpus-per-node]"
    )
    with pytest.raises(HpctfError, match=r"gpus_per_node=1: .* which has no GPU \(no CUDA_VISIBLE_DEVICES"):
        bind_gpus(1, "local", {})


def _submit(tmp_path, env, *args):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nprint('CVD', os.environ.get('CUDA_VISIBLE_DEVICES'))\n")
    return subprocess.run(
        [HPCTF, "submit", "--target", "local", "--json", "--wait", *args, str(probe)],
        capture_output=True,
        text=True,
        env={**env, "HPCTF_HOME": str(tmp_path / "home")},
        timeout=120,
    )


def test_a_local_run_sees_the_gpus_it_was_given_and_no_more(tmp_path):
    """On this machine (no GPU) through stand-in device ids: the binding, not CUDA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    done = _submit(tmp_path, {**env, "CUDA_VISIBLE_DEVICES": "3,5"}, "--gpus-per-node", "1")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    log = Path(record["log_dir"]) / f"{record['job_id']}_0_log.out"
    assert "CVD 3" in log.read_text().splitlines(), log.read_text()
    refused = _submit(tmp_path, {**env, "CUDA_VISIBLE_DEVICES": "3,5"}, "--gpus-per-node", "3")
    assert refused.returncode != 0 and "which has 2 GPUs" in refused.stderr, refused.stderr
    assert "ask for at most 2 [--gpus-per-node]" in refused.stderr
