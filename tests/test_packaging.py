"""The built wheel carries the templates: install it into a fresh venv outside the source
tree and render."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_renders_outside_the_source_tree(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)], check=True)
    wheel = next(wheels.glob("hpctf-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "hpctf/templates/base.sbatch.j2",
        "hpctf/templates/single.sbatch.j2",
        "hpctf/templates/mpi.sbatch.j2",
        "hpctf/templates/ps.sbatch.j2",
    } <= set(names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    # The dependencies come from the test interpreter's site-packages (no network needed);
    # hpctf itself only from the wheel.
    import click
    import hostlist
    import jinja2
    import markupsafe

    # Links to those packages alone: a path to the whole site-packages would also show pip
    # the test interpreter's own hpctf when it is installed there (not editable).
    site = next(env_dir.glob("lib/python*/site-packages"))
    deps = tmp_path / "deps"
    deps.mkdir()
    for module in (click, jinja2, markupsafe):
        package = Path(module.__file__).resolve().parent
        (deps / package.name).symlink_to(package)
    (deps / "hostlist.py").symlink_to(Path(hostlist.__file__).resolve())
    (site / "hpctf_test_deps.pth").write_text(f"{deps}\n")
    subprocess.run([env_dir / "bin" / "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "train.py").write_text("print(1)\n")
    done = subprocess.run(
        [env_dir / "bin" / "hpctf", "render", "--backend", "ps", "--nodes", "2", "train.py"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --ntasks=2" in done.stdout
    where = subprocess.run(
        [env_dir / "bin" / "python", "-c", "import hpctf.render as r; print(r.BUILTIN_TEMPLATES.is_dir(), r.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith("True " + str(env_dir)), where.stdout
