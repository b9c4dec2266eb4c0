"""Hostile input (issue 8): every user field that reaches a job script, given every string
of tests/hostile.py, is either refused with a SpecError/HpctfError that names the field,
or reaches the program that reads it exactly as given. Nothing is ever executed: each
string that could run tries to create a marker file, and the marker must never appear.

The scripts run for real: on the local target (the same rendered script under bash, in
batches: many strings per job) and, on the test cluster, through sbatch. Programs that
stand in for what the script starts record what they receive:

- the entry script (a probe) dumps sys.argv, its environment and cwd as JSON;
- ``python`` is a wrapper that records its argv (and answers ``python -m hpctf.envs``
  itself, so pip/conda package names are checked where the script hands them over);
- ``module`` and ``apptainer`` on PATH record their argv (apptainer then runs the task).

`setup` lines are shell code by design: one test shows a setup line runs as written.
The figures (strings tried / refused / literal / executed) are printed at the end and
written to hostile-summary.json in pytest's base temporary folder.

The tests run in any order, alone or together: what several of them use (the stand-ins,
the folders named by the strings) is made by a fixture, never left by another test. Each
test checks that it gave every string of its fields an outcome; the summary counts the
outcomes the tests that ran recorded, so a subset of tests gives a smaller, true summary.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import hpctf
from hpctf import submission
from hpctf.errors import HpctfError, SpecError
from hpctf.executors.local import launch
from hpctf.render import JobPaths, render_script
from hpctf.targets import Target

from .hostile import corpus, filename_variant, marker_name_found

REAL_PYTHON = sys.executable

PROBE = """\
import json, os, sys
out = os.path.join({out!r}, os.environ.get("SLURM_JOB_ID", "nojob") + ".json")
with open(out + ".part", "w") as f:
    json.dump({{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "file": os.path.abspath(__file__)}}, f)
os.replace(out + ".part", out)
"""

# Stand-ins: each records its argv, NUL-separated, first the job id (and for python, $0).
FAKE_PYTHON = """\
#!/bin/bash
f=$(mktemp {calls}/python.XXXXXXXX)
printf '%s\\0' "${{SLURM_JOB_ID-}}" "$0" "$@" >"$f"
if [ "${{1-}}" = -m ] && [ "${{2-}}" = hpctf.envs ]; then printf '%s\\n' "$0"; exit 0; fi
exec {real} "$@"
"""
FAKE_MODULE = """\
#!/bin/bash
f=$(mktemp {calls}/module.XXXXXXXX)
printf '%s\\0' "${{SLURM_JOB_ID-}}" "$@" >"$f"
"""
FAKE_APPTAINER = """\
#!/bin/bash
f=$(mktemp {calls}/apptainer.XXXXXXXX)
printf '%s\\0' "${{SLURM_JOB_ID-}}" "$@" >"$f"
shift  # exec
while [ $# -gt 0 ]; do
    case "$1" in
        --nv) shift ;;
        --bind) shift 2 ;;
        --pwd) cd -- "$2"; shift 2 ;;
        *) shift; break ;;  # the image
    esac
done
exec "$@"
"""

# How each (field, string) ended: refused by hpctf; reached the program literally; handed
# to sbatch, which accepted the job or refused the value (--test-only); no file name can
# hold it; or "ran": a job carried it, checked literally by the Slurm test.
OUTCOMES = ("refused", "literal", "sbatch accepted", "sbatch refused", "ran", "n/a")

LOCAL = Target(name="local", executor="local")
SLURM = Target(name="slurm")

# Fields that take one string per job (the rest take many strings in one job).
BATCHED = (
    "arguments",
    "script_params value",
    "script_params key",
    "environment_variables value",
    "environment_variables key",
    "pip_packages",
    "conda_packages",
    "modules",
    "container_mounts",
)
ONE_PER_JOB = ("job_name", "sbatch_options value", "entry_script", "python", "container_image", "source_directory")
FILE_NAMES = ("entry_script", "python", "source_directory")  # the string names a file or folder
RENDERED_SOURCE = "source_directory (render)"  # `hpctf render`: the job runs in the folder itself
# Fields only sbatch reads (#SBATCH lines): refused, or rendered, quoted and `bash -n`-clean.
SBATCH_ONLY = (
    "partition",
    "account",
    "qos",
    "time",
    "memory",
    "constraint",
    "gpu_type",
    "pmi",
    "sbatch_options key",
    "compute_target",
    "launcher",
    "distributed_backend",
    "container_runtime",
)


class Lab:
    """Folders, stand-ins, the corpus and the outcome of every (field, string)."""

    def __init__(self, root: Path):
        self.root = root
        root.chmod(0o755)  # the test cluster's nodes run jobs as this user; keep it readable
        self.token = secrets.token_hex(4)
        self.marker_dir = root / "marker"
        self.marker_dir.mkdir()
        self.marker = str(self.marker_dir / f"pwned-{self.token}")
        self.marker_name = f"pwned-{self.token}-rel"
        self.strings = corpus(self.marker)
        self.out = root / "probe-out"
        self.calls = root / "calls"
        self.bin = root / "bin"
        self.pynames = root / "pynames"
        self.home = root / "hpctf-home"
        for folder in (self.out, self.calls, self.bin, self.pynames):
            folder.mkdir()
        self.fake_python = self.bin / "fakepython"
        self._tool(self.fake_python, FAKE_PYTHON)
        self._tool(self.bin / "module", FAKE_MODULE)
        self._tool(self.bin / "apptainer", FAKE_APPTAINER)
        self.project = root / "project"
        self.project.mkdir()
        (self.project / "probe.py").write_text(PROBE.format(out=str(self.out)))
        # outcome[(field, index)]: one of OUTCOMES
        self.outcome: dict[tuple[str, int], str] = {}
        # Every record, in order: a test counts its own (see assert_every_string_recorded),
        # not those another test may or may not have made before it.
        self.records: list[tuple[str, int]] = []

    def _tool(self, path: Path, text: str) -> None:
        path.write_text(text.format(calls=str(self.calls), real=REAL_PYTHON))
        path.chmod(0o755)

    # -- helpers ----------------------------------------------------------------------

    def variant(self, i: int) -> str | None:
        return filename_variant(self.strings[i], self.marker, self.marker_name)

    def probe_result(self, job_id: str) -> dict:
        path = self.out / f"{job_id}.json"
        assert path.is_file(), f"the probe of job {job_id} wrote nothing"
        return json.loads(path.read_text())

    def calls_of(self, tool: str, job_id: str) -> list[list[str]]:
        found = []
        for path in sorted(self.calls.glob(f"{tool}.*")):
            words = [w.decode("utf-8", "surrogateescape") for w in path.read_bytes().split(b"\0")[:-1]]
            if words and words[0] == job_id:
                found.append(words[1:])
        return found

    def executed(self) -> list:
        """Every marker a hostile string left: the proof that it ran as code."""
        found = [self.marker] if os.path.lexists(self.marker) else []
        found += marker_name_found(self.marker_name, self.root, self.home)
        found += [
            p
            for p in (Path.cwd() / self.marker_name, Path.home() / self.marker_name, Path("/tmp") / self.marker_name)
            if os.path.lexists(p)
        ]
        return found

    def assert_not_executed(self) -> None:
        found = self.executed()
        assert not found, f"EXECUTED: {found}"

    def record(self, field: str, i: int, outcome: str) -> None:
        """The outcome of (field, string i). Two tests see the sbatch comment: the local
        run records "ran", the Slurm test "literal" (what sbatch read); the summary keeps
        "literal" whichever ran first. Any other disagreement is a contradiction."""
        self.records.append((field, i))
        old = self.outcome.setdefault((field, i), outcome)
        if old == outcome or (old, outcome) == ("literal", "ran"):
            return
        assert (old, outcome) == ("ran", "literal"), f"{field}, string {i}: {old}, then {outcome}"
        self.outcome[(field, i)] = outcome

    def assert_every_string_recorded(self, fields, since: int) -> None:
        """Each of ``fields``, and no other, got an outcome for every string from the
        records made after ``since`` (len(self.records) when the test began): the test
        left none unchecked, whatever other tests recorded before it."""
        mine = set(self.records[since:])
        for field in fields:
            missing = [i for i in range(len(self.strings)) if (field, i) not in mine]
            assert not missing, f"{field}: no outcome for strings {missing}"
        assert len(mine) == len(fields) * len(self.strings) > 0, sorted(mine)

    def summary(self) -> dict:
        fields: dict[str, dict[str, int]] = {}
        for (field, _), outcome in sorted(self.outcome.items()):
            counts = fields.setdefault(field, {"tried": 0, **dict.fromkeys(OUTCOMES, 0)})
            counts["tried"] += 1
            counts[outcome] += 1
        total = {k: sum(c[k] for c in fields.values()) for k in ("tried", *OUTCOMES)}
        return {"strings": len(self.strings), "fields": fields, "total": total, "executed": len(self.executed())}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("hostile")
    lab = Lab(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{lab.bin}{os.pathsep}{lab.pynames}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("HPCTF_HOME", str(lab.home))
        mp.setenv("LC_ALL", "C.UTF-8")
        yield lab
    lab.assert_not_executed()
    report = lab.summary()
    path = tmp_path_factory.getbasetemp() / "hostile-summary.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    t = report["total"]
    lines = [
        f"hostile input: {report['strings']} strings x {len(report['fields'])} fields = "
        f"{t['tried']} (field, string) pairs tried: "
        f"{t['refused']} refused, {t['literal']} reached the program literally, "
        f"{t['sbatch accepted']} accepted and {t['sbatch refused']} refused by sbatch --test-only "
        "(#SBATCH-only fields), "
        f"{t['ran']} ran (literal check on Slurm only), {t['n/a']} not applicable (no file name can hold them), "
        f"executed {report['executed']}  [{path}]"
    ]
    lines += [
        f"  {name:28} " + " ".join(f"{k}={v}" for k, v in counts.items()) for name, counts in report["fields"].items()
    ]
    print("\n".join(lines))  # in the captured output of the last test
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # and on the terminal, always
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


@dataclass
class Folders:
    """What the fields that name files need for string i."""

    name: str | None  # the string as a file name (lab.variant); None: no file name can hold it
    plain: Path  # a source folder: probe.py, and an entry script called `name`
    odd: Path | None  # a source folder called `name`: probe.py, and an entry script called `name`


@pytest.fixture(scope="module")
def folders(lab: Lab) -> dict[int, Folders]:
    """The folders, entry scripts and pythons (on PATH) named by each string, made once:
    the local runs, `hpctf render` runs and sbatch all use them, in whatever order."""
    made: dict[int, Folders] = {}
    for i in range(len(lab.strings)):
        name = lab.variant(i)
        plain = lab.root / "src" / str(i) / "plain"
        plain.mkdir(parents=True)
        (plain / "probe.py").write_text(PROBE.format(out=str(lab.out)))
        odd = None
        if name is not None:
            (plain / name).write_text(PROBE.format(out=str(lab.out)))
            (lab.pynames / name).symlink_to(lab.fake_python)
            odd = plain.parent / name
            odd.mkdir()
            for entry in ("probe.py", name):
                (odd / entry).write_text(PROBE.format(out=str(lab.out)))
        made[i] = Folders(name, plain, odd)
    return made


def named(err: Exception, field: str) -> bool:
    """Whether the error is about ``field`` (a SpecError's problem, or the message)."""
    key = field.split()[0]
    if isinstance(err, SpecError):
        if not any(p.field == key or p.field.startswith(key + "[") for p in err.problems):
            return False
    return key in str(err)


def build(lab: Lab, field: str, fields: dict) -> hpctf.TensorFlow | Exception:
    """The spec, or the error that refused it (which must name ``field``)."""
    base = dict(
        source_directory=lab.project, entry_script="probe.py", python=str(lab.fake_python), compute_target="local"
    )
    try:
        return hpctf.TensorFlow(**{**base, **fields})
    except (SpecError, HpctfError) as err:
        assert named(err, field), f"{field}: the error does not name the field:\n{err}"
        return err


def placed(field: str, s: str, i: int) -> dict:
    """The estimator fields that put string ``s`` into ``field``."""
    return {
        "arguments": dict(arguments=[s]),
        "script_params value": dict(script_params={f"--p{i}": s}),
        "script_params key": dict(script_params={s: True}),
        "environment_variables value": dict(environment_variables={f"HOSTILE_{i}": s}),
        "environment_variables key": dict(environment_variables={s: "key"}),
        "pip_packages": dict(pip_packages=[s]),
        "conda_packages": dict(conda_packages=[s]),
        "modules": dict(modules=[s]),
        "container_mounts": dict(container_image="/images/tf.sif", container_mounts=[s]),
        "job_name": dict(job_name=s),
        "sbatch_options value": dict(sbatch_options={"comment": s}),
        "sbatch_options key": dict(sbatch_options={s: "x"}),
        "container_image": dict(container_image=s),
        "python": dict(python=s),
        "partition": dict(partition=s),
        "account": dict(account=s),
        "qos": dict(qos=s),
        "time": dict(time=s),
        "memory": dict(memory=s),
        "constraint": dict(constraint=s),
        "gpu_type": dict(gpu_type=s, use_gpu=True),
        "pmi": dict(pmi=s, distributed_backend="mpi"),
        "compute_target": dict(compute_target=s),
        "launcher": dict(launcher=s, distributed_backend="mpi"),
        "distributed_backend": dict(distributed_backend=s),
        "container_runtime": dict(container_runtime=s, container_image="/images/tf.sif"),
    }[field]


def render_slurm(lab: Lab, spec: hpctf.TensorFlow) -> str:
    """The script `hpctf submit` would give sbatch for ``spec``."""
    return render_script(spec, JobPaths(workdir=lab.root / "w", log_dir=lab.root / "w" / "logs"), target=SLURM)


def render_in_place(lab: Lab, src: Path, **fields) -> tuple[hpctf.TensorFlow, JobPaths] | None:
    """What `hpctf render` makes of source folder ``src`` (the job runs there and logs
    beside it): the spec and its paths, or None where hpctf refuses the folder."""
    spec = build(lab, "source_directory", dict(source_directory=src, compute_target=None, **fields))
    if isinstance(spec, Exception):
        return None
    try:
        return spec, JobPaths.for_spec(spec)
    except HpctfError as err:
        assert named(err, "source_directory"), str(err)
        return None


def assert_valid_bash(scripts: list[str]) -> None:
    """Every script passes `bash -n` (a few at a time: each is a process)."""

    def check(script: str):
        done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        return None if done.returncode == 0 else (done.stderr, script[:3000])

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(check, scripts) if f is not None]
    assert not failures, failures[0]


def submit_local(spec: hpctf.TensorFlow):
    """plan + schedule on the local target; the run's handle."""
    from hpctf.runs import handle

    return handle(submission.schedule(submission.plan(spec, target=LOCAL)))


def wait_all(jobs, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        while not job.done():
            assert time.monotonic() < deadline, f"{job} did not end in {timeout}s"
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# Fields only sbatch reads: refused, or quoted, rendered and read by sbatch itself.
# ---------------------------------------------------------------------------------------

# What sbatch says when a word of an #SBATCH line became an option or a command of its own.
SBATCH_MISREAD = ("Usage: sbatch", "unrecognized option", "invalid option", "ambiguous option")


def test_sbatch_only_fields_refuse_or_quote(lab, slurm):
    """Every accepted value is rendered and given to the cluster's `sbatch --test-only`,
    which reads the #SBATCH lines as a real submit would: it may accept the job or refuse
    the value (no such partition), but never reads a value as an option."""
    start, tested = len(lab.records), 0
    workdir = lab.root / "w"
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    for field in SBATCH_ONLY:
        for i, s in enumerate(lab.strings):
            got = build(lab, field, placed(field, s, i))
            if isinstance(got, Exception):
                lab.record(field, i, "refused")
                continue
            if field == "compute_target":  # names a profile: an unknown one is refused at submit
                with pytest.raises(HpctfError, match="compute_target"):
                    submission.plan(got)
                lab.record(field, i, "refused")
                continue
            done = slurm.run("sbatch", "--test-only", input=render_slurm(lab, got), check=False, cwd=workdir)
            tested += 1
            said = done.stdout + done.stderr
            misread = SBATCH_MISREAD
            if field == "sbatch_options key":  # the key is a flag name: sbatch may not know it
                misread = ("Usage: sbatch",)
                assert done.returncode == 0 or f"--{s.lstrip('-')}" in said or "invalid" in said.lower(), said[:2000]
            assert not any(words in said for words in misread), (
                f"{field} = {s[:80]!r}: sbatch misread it:\n{said[:2000]}"
            )
            lab.record(field, i, "sbatch accepted" if done.returncode == 0 else "sbatch refused")
    lab.assert_not_executed()
    lab.assert_every_string_recorded(SBATCH_ONLY, since=start)
    assert tested > 0  # sbatch read some values, not only hpctf's refusals


# ---------------------------------------------------------------------------------------
# Many strings per job: argv, environment, packages, modules, container mounts.
# ---------------------------------------------------------------------------------------


def accepted(lab: Lab, field: str) -> list[int]:
    """Indexes of the strings ``field`` accepts (refusals are recorded)."""
    ok = []
    for i, s in enumerate(lab.strings):
        got = build(lab, field, placed(field, s, i))
        if isinstance(got, Exception):
            lab.record(field, i, "refused")
        else:
            ok.append(i)
    return ok


def test_many_strings_per_job_reach_the_program_literally(lab):
    S = lab.strings
    start = len(lab.records)
    ok = {field: accepted(lab, field) for field in BATCHED}
    assert all(ok.values()), ok  # every field takes some string: each job carries all of them
    params = {f"--p{i}": S[i] for i in ok["script_params value"]} | {S[i]: True for i in ok["script_params key"]}
    env = {f"HOSTILE_{i}": S[i] for i in ok["environment_variables value"]} | {
        S[i]: "key" for i in ok["environment_variables key"]
    }
    spec = hpctf.TensorFlow(
        source_directory=lab.project,
        entry_script="probe.py",
        python=str(lab.fake_python),
        compute_target="local",
        arguments=[S[i] for i in ok["arguments"]],
        script_params=params,
        environment_variables=env,
        pip_packages=[S[i] for i in ok["pip_packages"]],
        conda_packages=[S[i] for i in ok["conda_packages"]],
        modules=[S[i] for i in ok["modules"]],
    )
    mounts = [S[i] for i in ok["container_mounts"]]
    in_container = hpctf.TensorFlow(
        source_directory=lab.project,
        entry_script="probe.py",
        python=str(lab.fake_python),
        compute_target="local",
        container_image="/images/tf.sif",
        container_mounts=mounts,
    )
    assert_valid_bash([render_slurm(lab, spec), render_slurm(lab, in_container)])  # what sbatch would get
    jobs = [submit_local(spec), submit_local(in_container)]
    wait_all(jobs)
    lab.assert_not_executed()
    for job in jobs:
        assert job.result() == 0, job.stderr()

    got = lab.probe_result(jobs[0].job_id)
    expected_argv = ["probe.py"]
    for i in ok["script_params value"]:
        expected_argv += [f"--p{i}", S[i]]
    expected_argv += [S[i] for i in ok["script_params key"]]
    expected_argv += [S[i] for i in ok["arguments"]]
    assert got["argv"] == expected_argv
    for i in ok["environment_variables value"]:
        assert got["env"].get(f"HOSTILE_{i}") == S[i], f"HOSTILE_{i}"
    for i in ok["environment_variables key"]:
        assert got["env"].get(S[i]) == "key"
    for field in (
        "arguments",
        "script_params value",
        "script_params key",
        "environment_variables value",
        "environment_variables key",
    ):
        for i in ok[field]:
            lab.record(field, i, "literal")

    # python -m hpctf.envs ensure --cache DIR [--conda X]... [--pip Y]...: what it was handed
    ensure = [c[1:] for c in lab.calls_of("python", jobs[0].job_id) if c[1:3] == ["-m", "hpctf.envs"]]
    assert len(ensure) == 1, ensure
    handed = {"--pip": [], "--conda": []}
    words = ensure[0][3:]
    for flag, value in zip(words, words[1:]):
        if flag in handed:
            handed[flag].append(value)
    assert handed["--pip"] == [S[i] for i in ok["pip_packages"]]
    assert handed["--conda"] == [S[i] for i in ok["conda_packages"]]
    for i in ok["pip_packages"]:
        lab.record("pip_packages", i, "literal")
    for i in ok["conda_packages"]:
        lab.record("conda_packages", i, "literal")

    # `module load NAME...`: a real module command would read a leading '-' as an option.
    assert lab.calls_of("module", jobs[0].job_id) == [["load", *[S[i] for i in ok["modules"]]]]
    assert not [S[i] for i in ok["modules"] if S[i].startswith("-")]
    for i in ok["modules"]:
        lab.record("modules", i, "literal")

    # apptainer exec --bind RUN,...,MOUNTS --pwd DIR IMAGE ...: the job's mounts come last
    (call,) = lab.calls_of("apptainer", jobs[1].job_id)
    binds = call[call.index("--bind") + 1].split(",")
    assert binds[len(binds) - len(mounts) :] == mounts
    for i in ok["container_mounts"]:
        lab.record("container_mounts", i, "literal")
    assert lab.probe_result(jobs[1].job_id)["argv"] == ["probe.py"]
    lab.assert_every_string_recorded(BATCHED, since=start)


# ---------------------------------------------------------------------------------------
# One string per job: job name, sbatch comment, entry script, python, image, source folder.
# ---------------------------------------------------------------------------------------


def one_value_specs(lab: Lab, folders: dict[int, Folders]) -> dict[int, dict]:
    """For each string: the fields that accept it (one string in each), refusals recorded."""
    out: dict[int, dict] = {}
    for i, s in enumerate(lab.strings):
        name, plain, odd = folders[i].name, folders[i].plain, folders[i].odd
        chosen: dict = {}
        for field, fields in (
            ("job_name", dict(job_name=s)),
            ("sbatch_options value", dict(sbatch_options={"comment": s})),
            ("container_image", dict(container_image=s)),
            ("entry_script", dict(entry_script=name)),
            ("python", dict(python=name)),
            ("source_directory", dict(source_directory=odd)),
        ):
            if name is None and field in FILE_NAMES:
                lab.record(field, i, "n/a")
                continue
            got = build(lab, field, {"source_directory": plain, **fields})
            if isinstance(got, Exception):
                lab.record(field, i, "refused")
            else:
                chosen.update(fields)
        chosen.setdefault("source_directory", plain)
        out[i] = chosen
    return out


def test_one_string_per_job_reaches_the_program_literally(lab, folders):
    S = lab.strings
    start = len(lab.records)
    todo: list[tuple[int, dict]] = []
    for i, fields in one_value_specs(lab, folders).items():
        try:
            hpctf.TensorFlow(
                **{"entry_script": "probe.py", "python": str(lab.fake_python), "compute_target": "local", **fields}
            )
            todo.append((i, fields))
        except SpecError as err:
            # Each value is accepted alone but not together (a python with '=' in a
            # container): run the python alone, the others together.
            assert "python" in fields and "container_image" in fields and named(err, "python"), str(err)
            python = fields.pop("python")
            todo += [(i, fields), (i, {"python": python, "source_directory": fields["source_directory"]})]
    runs: list[tuple[int, dict, object]] = []
    scripts = []
    for first in range(0, len(todo), 12):  # a dozen jobs at a time: the machine has 2 cores
        batch = []
        for i, fields in todo[first : first + 12]:
            spec = hpctf.TensorFlow(
                **{"entry_script": "probe.py", "python": str(lab.fake_python), "compute_target": "local", **fields}
            )
            scripts.append(render_slurm(lab, spec))  # what sbatch would get
            try:
                job = submit_local(spec)
            except HpctfError as err:  # e.g. an entry script the snapshot leaves out
                assert "entry_script" in fields and named(err, "entry_script"), str(err)
                lab.record("entry_script", i, "refused")
                fields.pop("entry_script")
                job = submit_local(spec.with_changes(entry_script="probe.py"))
            runs.append((i, fields, job))
            batch.append(job)
        wait_all(batch)
        lab.assert_not_executed()
    assert_valid_bash(scripts)

    assert runs
    for i, fields, job in runs:
        assert job.result() == 0, f"string {i} {S[i][:60]!r}: {job.stderr()}"
        got = lab.probe_result(job.job_id)
        entry = fields.get("entry_script", "probe.py")
        assert os.path.normpath(got["argv"][0]) == entry and got["argv"][1:] == []
        assert Path(got["file"]).name == entry
        if "entry_script" in fields:
            lab.record("entry_script", i, "literal")
        if "job_name" in fields:
            assert got["env"]["SLURM_JOB_NAME"] == S[i]
            lab.record("job_name", i, "literal")
        if "sbatch_options" in fields:
            lab.record("sbatch_options value", i, "ran")  # sbatch reads it: see the Slurm test
        if "python" in fields:
            starts = [c for c in lab.calls_of("python", job.job_id) if c[1:3] == ["-m", "hpctf.runtime"]]
            assert [Path(c[0]).name for c in starts] == [fields["python"]], starts
            assert starts[0][-2:] == [fields["python"], got["argv"][0]]  # ... -- "$PYTHON" ENTRY
            lab.record("python", i, "literal")
        if "container_image" in fields:
            (call,) = lab.calls_of("apptainer", job.job_id)
            image_at = call.index("--pwd") + 2
            assert call[image_at] == S[i]
            assert not S[i].startswith("-")  # a real apptainer would read it as an option
            lab.record("container_image", i, "literal")
        if fields["source_directory"].name != "plain":
            # The code is snapshotted from that folder: the entry script came from there.
            spec_json = json.loads((Path(got["cwd"]).parent / "spec.json").read_text())
            assert spec_json["source_directory"] == str(fields["source_directory"])
            lab.record("source_directory", i, "literal")
    lab.assert_every_string_recorded(ONE_PER_JOB, since=start)


def test_source_directory_reaches_the_rendered_script_literally(lab, folders):
    """`hpctf render` keeps the code where it is: the script cds into the folder and logs
    beside it. The same script runs here under bash with the local srun stand-in."""
    start = len(lab.records)
    runs = []
    for i in range(len(lab.strings)):
        src = folders[i].odd
        if src is None:
            lab.record(RENDERED_SOURCE, i, "n/a")
            continue
        if (rendered := render_in_place(lab, src)) is None:
            lab.record(RENDERED_SOURCE, i, "refused")
            continue
        spec, paths = rendered
        paths.log_dir.mkdir(exist_ok=True)
        script = render_script(spec, paths, target=SLURM)
        run_dir = lab.root / "render-runs" / str(i)
        run_dir.mkdir(parents=True)
        (run_dir / "job.sbatch").write_text(script)
        job_id = f"R{i}-{lab.token}"
        launch.start(run_dir / "job.sbatch", run_dir, paths.log_dir, job_id, spec.name, 1)
        runs.append((i, src, paths, job_id))
        if len(runs) % 12 == 0:
            _wait_exit_files(runs[-12:])
    _wait_exit_files(runs)
    lab.assert_not_executed()
    assert runs
    for i, src, paths, job_id in runs:
        code = (paths.log_dir / f"{job_id}_exitcode").read_text().strip()
        assert code == "0", (paths.log_dir / f"{job_id}_0_log.err").read_text()
        got = lab.probe_result(job_id)
        assert got["cwd"] == str(src)
        assert got["env"]["HPCTF_LOG_DIR"] == str(paths.log_dir)
        lab.record(RENDERED_SOURCE, i, "literal")
    lab.assert_every_string_recorded([RENDERED_SOURCE], since=start)


def _wait_exit_files(runs, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for _, _, paths, job_id in runs:
        while not (paths.log_dir / f"{job_id}_exitcode").exists():
            assert time.monotonic() < deadline, f"render-mode job {job_id} did not end"
            time.sleep(0.05)


def test_local_runs_are_tracked_beside_processes_with_undecodable_names(lab):
    """A process name is bytes, cut by the kernel at 15 (the one-string test starts pythons
    under hostile names): tracking a local run reads every process's /proc entry."""
    folder = lab.root / "odd-names"
    folder.mkdir()
    link = folder / ("ע" * 8)  # 16 bytes of UTF-8: the kernel keeps 15, half a character
    link.symlink_to(shutil.which("sleep"))
    sleeper = subprocess.Popen([str(link), "60"])
    try:
        # Popen returns once the child is forked: its name is the link's after the exec.
        deadline = time.monotonic() + 10
        while (comm := Path(f"/proc/{sleeper.pid}/comm").read_bytes().rstrip(b"\n")) != link.name.encode()[:15]:
            assert time.monotonic() < deadline, comm
            time.sleep(0.01)
        with pytest.raises(UnicodeDecodeError):
            comm.decode()
        job = submit_local(
            hpctf.TensorFlow(
                source_directory=lab.project,
                entry_script="probe.py",
                python=str(lab.fake_python),
                compute_target="local",
            )
        )
        wait_all([job])
        assert job.result() == 0
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------------------
# setup is shell code by design; every accepted value renders to valid bash.
# ---------------------------------------------------------------------------------------


def test_setup_lines_run_exactly_as_written(lab):
    out = lab.root / "setup-out"
    line = f'printf \'%s|%s\\n\' "$((6 * 7))" "$(echo sub)" >{out}; touch {out}.ran'
    spec = hpctf.TensorFlow(
        source_directory=lab.project,
        entry_script="probe.py",
        python=str(lab.fake_python),
        compute_target="local",
        setup=[line],
    )
    script = render_script(spec, JobPaths(lab.root / "w", lab.root / "w" / "logs"), target=SLURM)
    assert f"\n{line}\n" in script  # verbatim
    job = submit_local(spec)
    wait_all([job])
    assert job.result() == 0, job.stderr()
    assert out.read_text() == "42|sub\n" and Path(f"{out}.ran").exists()


def test_every_accepted_value_renders_to_valid_bash(lab, folders):
    """Every (field, string) hpctf accepts, each alone in its field, renders to a script
    that passes bash -n; every other one is refused, naming the field (in build). It
    renders them itself rather than collect what other tests rendered, which may not run."""
    scripts = []
    for field in (*BATCHED, *ONE_PER_JOB, *SBATCH_ONLY):
        if field == "compute_target":  # names a profile: an unknown one is refused at submit
            continue
        for i, s in enumerate(lab.strings):
            f = folders[i]
            if field not in FILE_NAMES:
                fields = placed(field, s, i)
            elif f.name is None:  # no file name can hold it
                continue
            else:
                fields = {
                    "entry_script": dict(source_directory=f.plain, entry_script=f.name),
                    "python": dict(python=f.name),
                    "source_directory": dict(source_directory=f.odd),
                }[field]
            spec = build(lab, field, fields)
            if not isinstance(spec, Exception):
                scripts.append(render_slurm(lab, spec))
    for f in folders.values():  # `hpctf render`: the job runs in the folder itself
        if f.odd is not None and (rendered := render_in_place(lab, f.odd)) is not None:
            scripts.append(render_script(*rendered, target=SLURM))
    assert len(scripts) > 300, len(scripts)
    assert_valid_bash(scripts)


# ---------------------------------------------------------------------------------------
# The real cluster: the same corpus through sbatch.
# ---------------------------------------------------------------------------------------


def squeue_jobs(slurm, ids: list[str]) -> dict[str, dict]:
    data = json.loads(slurm.run("squeue", "--json").stdout)
    return {str(j["job_id"]): j for j in data["jobs"] if str(j["job_id"]) in ids}


def test_hostile_strings_through_sbatch(lab, folders, slurm, monkeypatch):
    S = lab.strings
    for key, value in slurm.env.items():
        if key.startswith(("SLURM_", "OMPI_")):
            monkeypatch.setenv(key, value)
    # 1. One job that runs: every accepted argument and environment value, a hostile job
    #    name and comment; the probe reports what arrived.
    args = [s for s in S if not isinstance(build(lab, "arguments", dict(arguments=[s])), Exception)]
    env = {
        f"HOSTILE_{i}": s
        for i, s in enumerate(S)
        if not isinstance(build(lab, "environment_variables", dict(environment_variables={"HOSTILE_0": s})), Exception)
    }
    assert args and env
    name, comment = f"$(touch {lab.marker}) `x` 'q\" é", f"; touch {lab.marker} # 中文 %j %% $HOME"
    spec = hpctf.TensorFlow(
        source_directory=lab.project,
        entry_script="probe.py",
        python=REAL_PYTHON,
        compute_target="slurm",
        time="5",
        arguments=args,
        environment_variables=env,
        job_name=name,
        sbatch_options={"comment": comment},
    )
    job = hpctf.submit(spec)
    state, code = slurm.wait(job.job_id, timeout=120)
    assert state == "COMPLETED", (state, code, job.stderr())
    lab.assert_not_executed()
    got = lab.probe_result(job.job_id)
    assert got["argv"] == ["probe.py", *args]
    assert {k: got["env"].get(k) for k in env} == env
    assert got["env"]["SLURM_JOB_NAME"] == name

    # 2. Held jobs (never run): what sbatch read from the #SBATCH lines, for every string
    #    the job name and comment accept, and every source folder `hpctf render` would cd to.
    start = len(lab.records)
    ids: dict[str, tuple[int, hpctf.TensorFlow]] = {}
    rendered: dict[str, JobPaths] = {}
    held_dir = lab.root / "held"
    held_dir.mkdir()
    try:
        for i, s in enumerate(S):
            fields = {}
            for field, extra in (
                ("job_name", dict(job_name=s)),
                ("sbatch_options value", dict(sbatch_options={"comment": s, "hold": True})),
            ):
                if not isinstance(build(lab, field, extra), Exception):
                    fields.update(extra)
                elif field == "sbatch_options value":
                    lab.record(field, i, "refused")
            if not fields:
                continue
            fields.setdefault("sbatch_options", {"hold": True})
            held = hpctf.TensorFlow(
                source_directory=lab.project,
                entry_script="probe.py",
                python=REAL_PYTHON,
                compute_target="slurm",
                **fields,
            )
            try:
                ids[hpctf.submit(held).job_id] = (i, held)
            except HpctfError as err:
                raise AssertionError(f"string {i} {s[:80]!r}: {err}") from None
        for i in folders:  # the folders `hpctf render` accepts (its test runs them)
            if folders[i].odd is None:
                continue
            if (
                in_place := render_in_place(lab, folders[i].odd, python=REAL_PYTHON, sbatch_options={"hold": True})
            ) is None:
                continue
            held, paths = in_place
            script = held_dir / f"{i}.sbatch"
            script.write_text(render_script(held, paths, target=SLURM))
            rendered[slurm.sbatch(script)] = paths
        seen = squeue_jobs(slurm, [*ids, *rendered])
    finally:
        if ids or rendered:
            slurm.run("scancel", *ids, *rendered, check=False)
    assert ids and rendered and len(seen) == len(ids) + len(rendered), (len(ids), len(rendered), len(seen))
    for job_id, (i, held) in ids.items():
        assert seen[job_id]["name"] == held.name, (i, S[i][:80])
        if "comment" in held.sbatch_options:
            assert seen[job_id]["comment"] == S[i], (i, S[i][:80])
            lab.record("sbatch_options value", i, "literal")
    for job_id, paths in rendered.items():
        # Slurm 22.05 reports the pattern sbatch read (%j, a '%' in the folder as '%%'); 24.11
        # the file name it makes of it for this job.
        pattern, name = paths.log_pattern("out", "0"), f"{paths.log_dir}/{job_id}_0_log.out"
        assert seen[job_id]["standard_output"] in (pattern, name), paths
    lab.assert_not_executed()
    lab.assert_every_string_recorded(["sbatch_options value"], since=start)
