"""Every template, rendered: snapshot (syrupy) + `bash -n` + shellcheck. The Slurm suite
sends the same scripts to `sbatch --test-only` and runs each backend for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpctf
from hpctf.render import JobPaths, render_script

from .cases import RENDER_CASES, split_case
from .conftest import SNAPSHOT_PATHS, bash_n, shellcheck

# Container scripts bind hpctf's own folder into the image: where that is depends on the
# checkout, so snapshots show it as <hpctf> (and the hostlist module as <hostlist>). A sweep's
# script names hpctf's own interpreter, which depends on where the virtual environment is.
_MACHINE_PATHS = {
    sys.executable: "<python>",
    str(Path(hpctf.__file__).resolve().parent): "<hpctf>",
    str(Path(__import__("hostlist").__file__).resolve()): "<hostlist>",
}


def render_case(make_spec, name: str) -> str:
    fields, target = split_case(name)
    return render_script(make_spec(**fields), SNAPSHOT_PATHS, target=target)


def machine_neutral(script: str) -> str:
    for path, name in _MACHINE_PATHS.items():
        script = script.replace(path, name)
    return script


def test_cover_each_backend_device_size_and_launcher():
    assert len(RENDER_CASES) >= 12
    specs = RENDER_CASES.values()
    for backend in (None, "mpi", "ps"):
        of = [s for s in specs if s.get("distributed_backend") == backend]
        assert any(s.get("use_gpu") or s.get("gpus_per_node") for s in of), backend
        assert any(not (s.get("use_gpu") or s.get("gpus_per_node")) for s in of), backend
    mpi = [s for s in specs if s.get("distributed_backend") == "mpi"]
    for launcher in ("srun", "mpirun"):
        shapes = {s.get("node_count", 1) > 1 for s in mpi if s.get("launcher", "srun") == launcher}
        assert shapes == {True, False}, launcher


@pytest.mark.parametrize("name", sorted(RENDER_CASES))
def test_rendered_script_snapshot(make_spec, snapshot, name):
    assert machine_neutral(render_case(make_spec, name)) == snapshot


@pytest.mark.parametrize("name", sorted(RENDER_CASES))
def test_rendered_script_is_valid_bash_and_shellcheck_clean(make_spec, name):
    script = render_case(make_spec, name)
    assert bash_n(script).returncode == 0, bash_n(script).stderr
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


def test_issue_example_mpi(make_spec):
    spec = make_spec(
        distributed_backend="mpi",
        node_count=2,
        process_count_per_node=4,
        gpus_per_node=4,
        script_params={"--epochs": 3},
    )
    script = render_script(spec, SNAPSHOT_PATHS)
    assert "#SBATCH --nodes=2\n" in script
    assert "#SBATCH --ntasks-per-node=4\n" in script
    assert "#SBATCH --gres=gpu:4\n" in script
    assert "srun --mpi=pmix --ntasks=8" in script
    assert '"$PYTHON" train.py --epochs 3' in script


def test_user_values_are_literal_arguments_when_the_script_runs(make_spec, tmp_path):
    """Run the rendered launch with stand-ins for srun: the hostile values reach the
    program as literal arguments and nothing they contain is executed."""
    marker = tmp_path / "pwned"
    evil = [f"$(touch {marker})", f"; touch {marker}", f"`touch {marker}`", f"' ; touch {marker} ; '", "a\nb", "*"]
    spec = make_spec(
        script_params={"--x": evil[0], "--y": evil[1]},
        arguments=evil[2:],
        job_name=f"$(touch {marker})",
        environment_variables={"EVIL": f"$(touch {marker})"},
    )
    src = spec.source_directory
    (src / "train.py").write_text("import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['EVIL']]))\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    # The project's interpreter: it has hostlist (hpctf.runtime's one dependency); a bare
    # `python3` from PATH need not.
    script = render_script(spec.with_changes(python=sys.executable), JobPaths(src, logs))
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    # srun stand-in: drop srun's own flags, run the task command once as task 0.
    (fakebin / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    (fakebin / "srun").chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{fakebin}:{os.environ['PATH']}",
        SLURM_JOB_ID="1",
        SLURM_PROCID="0",
        PYTHONPATH=str(__import__("pathlib").Path(hpctf.__file__).parent.parent),
    )
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import json

    argv, evil_env = json.loads(done.stdout.strip().splitlines()[-1])
    assert argv == ["--x", evil[0], "--y", evil[1], *evil[2:]]
    assert evil_env == f"$(touch {marker})"
    assert not marker.exists()


def test_user_template_folder_overrides_one_template(make_spec, tmp_path):
    (tmp_path / "single.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}{% block launch %}echo site launch {{ command | shjoin }}\n{% endblock %}'
    )
    script = render_script(make_spec(), SNAPSHOT_PATHS, template_dirs=[tmp_path])
    assert "echo site launch train.py" in script and "#SBATCH --nodes=1" in script


def test_compiled_templates_are_kept_between_commands_and_follow_edits(source_dir, tmp_path):
    # Jinja's bytecode cache, in Jinja's per-user folder under $TMPDIR: the second render
    # loads the compiled templates; a site template edited between two renders is compiled
    # again (the cache checks each entry against the template's source).
    site = tmp_path / "site"
    site.mkdir()
    launch = '{% extends "base.sbatch.j2" %}{% block launch %}echo WORD {{ command | shjoin }}\n{% endblock %}'
    (site / "single.sbatch.j2").write_text(launch.replace("WORD", "first"))
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("HPCTF_TEMPLATE_CACHE", None)

    def render() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hpctf.cli", "render", "--templates", str(site), "train.py"],
            capture_output=True, text=True, cwd=source_dir, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "echo first train.py" in render()
    cache = tmp_path / f"_jinja2-cache-{os.getuid()}"
    entries = {p.name: p.stat().st_mtime_ns for p in cache.glob("__jinja2_*.cache")}
    assert len(entries) >= 2  # base.sbatch.j2 and the site's single.sbatch.j2
    assert "echo first train.py" in render()
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("__jinja2_*.cache")} == entries  # read, not written
    (site / "single.sbatch.j2").write_text(launch.replace("WORD", "edited"))
    assert "echo edited train.py" in render()


def test_a_template_cache_that_cannot_be_written_is_no_cache(make_spec, tmp_path, monkeypatch):
    from hpctf import render

    (tmp_path / "not-a-folder").write_text("")
    template_cache = render.template_cache
    monkeypatch.setattr(render, "template_cache", lambda: render._TemplateCache(str(tmp_path / "not-a-folder")))
    render.environment.cache_clear()
    try:
        assert "#SBATCH --nodes=1" in render_script(make_spec(), SNAPSHOT_PATHS)
    finally:
        render.environment.cache_clear()
    monkeypatch.setenv("HPCTF_TEMPLATE_CACHE", "0")
    assert template_cache() is None


def test_a_damaged_cache_entry_is_compiled_again(make_spec, tmp_path, monkeypatch):
    from hpctf import render

    monkeypatch.setattr(render, "template_cache", lambda: render._TemplateCache(str(tmp_path)))
    render.environment.cache_clear()
    try:
        expected = render_script(make_spec(), SNAPSHOT_PATHS)
        for entry in tmp_path.glob("__jinja2_*.cache"):
            entry.write_bytes(entry.read_bytes()[:40])  # cut short, as by a full disk
        render.environment.cache_clear()
        assert render_script(make_spec(), SNAPSHOT_PATHS) == expected
    finally:
        render.environment.cache_clear()


def test_misspelt_template_variable_is_an_error(make_spec, tmp_path):
    import jinja2

    (tmp_path / "single.sbatch.j2").write_text("{{ not_a_variable }}")
    with pytest.raises(jinja2.UndefinedError):
        render_script(make_spec(), SNAPSHOT_PATHS, template_dirs=[tmp_path])


def test_percent_in_log_dir_is_literal_for_slurm(make_spec):
    script = render_script(make_spec(), JobPaths(SNAPSHOT_PATHS.workdir, SNAPSHOT_PATHS.workdir / "100%"))
    assert "#SBATCH --output=/shared/project/100%%/%j_0_log.out" in script
