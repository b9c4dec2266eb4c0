"""Every snapshot case's script *body* runs: the script of tests/cases.py, rendered for a
temporary folder, runs under bash as Slurm's batch step would on its allocation
(tests/fakeslurm.py), with stand-ins for srun, mpirun, apptainer/singularity, Pyxis,
`module` and the package builder. Each task's program records the argv and environment
it got; the tests check them against what the case asks for, worked out here from the
case's fields and from Slurm's rules, not from hpctf's code.

The real launchers run these scripts on the test cluster (tests/test_slurm.py,
test_environments.py, test_users_code.py); this is what proves every case's body, the
container and module ones included, on any machine.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import hpctf
from hpctf.render import JobPaths, render_script

from . import fakeslurm
from .cases import RENDER_CASES, split_case

PROGRAMS = Path(__file__).resolve().parent / "programs"
JOB_ID = 4242
GPUS_PER_NODE_OF_USE_GPU = 1  # use_gpu=True alone asks for one GPU per node

# What the entry script is given, where a case passes anything (script_params, then arguments).
EXPECTED_ARGS = {
    "single-slurm-options": [
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--verbose",
        "--tag",
        "$(touch /tmp/hpctf-pwned)",
        "; rm -rf ~",
        "`id`",
    ],
    "mpi-mpirun-2node-gpu": ["--epochs", "2"],
}


@dataclass
class Case:
    """A case's fields, with its site profile's and the spec's defaults applied."""

    name: str
    fields: dict
    target: dict

    @property
    def backend(self) -> str:
        return self.fields.get("distributed_backend") or "single"

    @property
    def launcher(self) -> str:
        return self.fields.get("launcher", "srun")

    @property
    def nodes(self) -> int:
        return self.fields.get("node_count", 1)

    @property
    def gpus(self) -> int:
        if self.fields.get("gpus_per_node"):
            return self.fields["gpus_per_node"]
        return GPUS_PER_NODE_OF_USE_GPU if self.fields.get("use_gpu") else 0

    @property
    def roles(self) -> list[tuple[str, int]]:
        """ps/worker jobs: (type, index) by task id, in blocks chief, ps, worker."""
        chief = [("chief", 0)] if self.fields.get("chief") else []
        ps = [("ps", i) for i in range(self.fields.get("parameter_server_count", 1))]
        workers = [("worker", i) for i in range(self.fields.get("worker_count", 1))]
        return chief + ps + workers

    @property
    def task_count(self) -> int:
        if self.backend == "mpi":
            return self.nodes * self.fields.get("process_count_per_node", 1)
        return len(self.roles) if self.backend == "ps" else 1

    def hosts(self) -> list[str]:
        """Slurm's block placement: N tasks on M nodes, the remainder on the first nodes."""
        n, m = self.task_count, self.nodes
        per_node = [n // m + (1 if i < n % m else 0) for i in range(m)]
        return [f"node{i + 1}" for i, count in enumerate(per_node) for _ in range(count)]

    @property
    def environment(self) -> dict[str, str]:
        return {**self.target.get("environment_variables", {}), **self.fields.get("environment_variables", {})}


@dataclass
class Ran:
    case: Case
    run: fakeslurm.BatchRun
    tasks: list[dict]  # each task's record, by rank
    workdir: Path
    log_dir: Path


def run_case(name: str, folder: Path) -> Ran:
    fields, target = split_case(name)
    workdir = folder / "project"
    workdir.mkdir(parents=True)
    shutil.copy(PROGRAMS / "task_record.py", workdir / "train.py")
    spec = hpctf.TensorFlow(source_directory=workdir, entry_script="train.py", python="python3", **fields)
    paths = JobPaths(workdir, workdir / "hpctf-logs")
    paths.log_dir.mkdir()
    run = fakeslurm.run_batch(render_script(spec, paths, target=target), folder / "job", job_id=JOB_ID)
    records = [json.loads(p.read_text()) for p in (folder / "job" / "tasks").glob("*.json")]
    records.sort(key=lambda r: int(r["env"]["HPCTF_RANK"]))
    case = Case(name, dict(RENDER_CASES[name]), dict(RENDER_CASES[name].get("target", {})))
    return Ran(case, run, records, workdir, paths.log_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each case's job, run once for all the tests here, whatever order they run in."""
    done: dict[str, Ran] = {}

    def get(name: str) -> Ran:
        if name not in done:
            done[name] = run_case(name, tmp_path_factory.mktemp(name))
        return done[name]

    return get


@pytest.fixture(params=sorted(RENDER_CASES))
def ran(request, runs) -> Ran:
    result = runs(request.param)
    assert result.run.returncode == 0, f"the job script failed ({result.run.returncode}):\n{result.run.stderr[-3000:]}"
    return result


def test_every_task_runs_once_with_its_rank_on_its_node(ran):
    case = ran.case
    assert len(ran.tasks) == case.task_count
    assert [int(t["env"]["HPCTF_RANK"]) for t in ran.tasks] == list(range(case.task_count))
    assert [t["env"]["SLURMD_NODENAME"] for t in ran.tasks] == case.hosts()
    for task in ran.tasks:
        assert task["env"]["HPCTF_WORLD_SIZE"] == str(case.task_count)
        if case.launcher == "mpirun":  # Open MPI's rank, not the orted step's SLURM_PROCID
            assert task["env"]["OMPI_COMM_WORLD_RANK"] == task["env"]["HPCTF_RANK"]


def test_the_entry_script_gets_its_arguments_literally_in_the_run_folder(ran):
    for task in ran.tasks:
        assert task["argv"][1:] == EXPECTED_ARGS.get(ran.case.name, [])
        assert Path(task["argv"][0]).name == "train.py"
        assert Path(task["cwd"]).resolve() == ran.workdir.resolve()


def test_each_task_sees_the_gpus_it_should(ran):
    case = ran.case
    hosts = case.hosts()
    for rank, task in enumerate(ran.tasks):
        visible = task["env"].get("CUDA_VISIBLE_DEVICES", "")
        if not case.gpus:
            assert visible == "", rank
        elif case.backend == "single":  # one process: every GPU the job holds on the node
            assert visible == ",".join(str(i) for i in range(case.gpus))
        elif case.backend == "mpi":  # one GPU per rank: its local rank's
            assert visible == str(hosts[:rank].count(hosts[rank]))
        elif case.roles[rank][0] == "ps":  # parameter servers compute nothing
            assert visible == ""
        else:  # chief and workers: the next GPU of the node not taken by another of them
            slot = sum(1 for r in range(rank) if hosts[r] == hosts[rank] and case.roles[r][0] != "ps")
            assert visible == str(slot)


def test_parameter_server_tasks_get_a_tf_config_for_their_role_and_node(ran):
    case = ran.case
    if case.backend != "ps":
        assert all("TF_CONFIG" not in t["env"] for t in ran.tasks)
        return
    n = case.task_count
    # Task i listens on port P+i; P is the job's own range unless port_base fixes it.
    base = case.fields.get("port_base") or 10000 + JOB_ID % (22000 // n) * n
    addresses = [f"{host}:{base + i}" for i, host in enumerate(case.hosts())]
    cluster: dict[str, list[str]] = {}
    for (role, _), address in zip(case.roles, addresses):
        cluster.setdefault(role, []).append(address)
    for rank, task in enumerate(ran.tasks):
        config = json.loads(task["env"]["TF_CONFIG"])
        assert config["cluster"] == cluster
        assert (config["task"]["type"], config["task"]["index"]) == case.roles[rank]


def test_keras_follows_the_policy(ran):
    # The task's own Python decides: the stand-in image's has no site-packages at all.
    has_tf_keras = importlib.util.find_spec("tf_keras") is not None and not ran.case.fields.get("container_image")
    for task in ran.tasks:
        if ran.case.backend == "single":  # TensorFlow's own default: Keras 3
            assert "TF_USE_LEGACY_KERAS" not in task["env"]
        else:  # Horovod's Keras layer and PS/MWMS fit need Keras 2 (tf-keras), where present
            assert task["env"].get("TF_USE_LEGACY_KERAS") == ("1" if has_tf_keras else None)


def test_the_jobs_and_the_sites_variables_reach_every_task_as_given(ran):
    for task in ran.tasks:
        for name, value in ran.case.environment.items():
            assert task["env"][name] == value


def test_the_launcher_is_called_as_the_backend_needs(ran):
    case = ran.case
    srun, mpirun = ran.run.calls("srun"), ran.run.calls("mpirun")
    if case.launcher == "mpirun":
        assert srun == [] and len(mpirun) == 1
        argv = mpirun[0]
        assert argv[argv.index("-np") + 1] == str(case.task_count)
        exports = set(ran.tasks[0]["env"]["STANDIN_MPI_EXPORTS"].split(","))
        # -x: what every rank needs on any node (Open MPI starts remote ranks afresh).
        assert {"PATH", "HPCTF_LOG_DIR"} <= exports
        return
    steps = [argv for argv in srun if argv != ["--help"]]  # --help: the Pyxis check
    assert len(steps) == 1
    step = steps[0]
    assert f"--ntasks={case.task_count}" in step and "--kill-on-bad-exit=1" in step
    mpi = [a for a in step if a.startswith("--mpi=")]
    assert mpi == ([f"--mpi={case.fields.get('pmi', 'pmix')}"] if case.backend == "mpi" else [])
    if case.backend == "mpi":  # Slurm's PMI plugin gives each rank its rank
        key = "PMIX_RANK" if case.fields.get("pmi", "pmix") == "pmix" else "PMI_RANK"
        assert [t["env"][key] for t in ran.tasks] == [str(r) for r in range(case.task_count)]


def test_tasks_run_in_the_container_image_with_the_mounts(ran):
    case = ran.case
    image = case.fields.get("container_image")
    containers = {t["env"].get("STANDIN_CONTAINER") for t in ran.tasks}
    if not image:
        assert containers == {None}
        return
    runtime = case.fields.get("container_runtime", "apptainer")
    assert containers == {f"{runtime}:{image}"}
    if runtime == "pyxis":  # srun itself starts the container
        step = [a for a in ran.run.calls("srun") if a != ["--help"]][0]
        assert f"--container-image={image}" in step
        return
    calls = ran.run.calls(runtime)
    assert len(calls) == case.task_count
    binds = calls[0][calls[0].index("--bind") + 1].split(",")
    assert f"{ran.workdir}:{ran.workdir}" in binds
    for mount in case.fields.get("container_mounts", []):
        assert mount in binds
    # --nv: the host's GPU driver in the container, for GPU jobs only
    assert {t["env"]["STANDIN_CONTAINER_GPU"] for t in ran.tasks} == {"1" if case.gpus else ""}


def test_packages_come_from_the_environment_built_for_them(ran):
    case = ran.case
    pip, conda = case.fields.get("pip_packages", []), case.fields.get("conda_packages", [])
    envs = {t["env"].get("STANDIN_ENV") for t in ran.tasks}
    if not (pip or conda):
        assert envs == {None}
        return
    (request,) = envs
    words = shlex.split(request)
    assert words[0] == "ensure"
    asked = [(words[i], words[i + 1]) for i in range(1, len(words) - 1) if words[i] in ("--pip", "--conda")]
    assert asked == [("--pip", p) for p in pip] + [("--conda", c) for c in conda]
    if "env_cache" in case.target:
        assert words[words.index("--cache") + 1] == case.target["env_cache"]
    if "tensorflow" in case.target:
        assert words[words.index("--tensorflow") + 1] == case.target["tensorflow"]
    assert ("--gpu" in words) == bool(case.gpus)


def test_modules_are_loaded_site_first(ran):
    target, fields = ran.case.target, ran.case.fields
    expected = [["use", path] for path in target.get("module_paths", [])]
    modules = [*target.get("modules", []), *fields.get("modules", [])]
    if modules:
        expected.append(["load", *modules])
    assert ran.run.calls("module") == expected


def test_each_task_writes_its_own_log_and_the_job_its_exit_status(ran):
    for rank in range(ran.case.task_count):
        log = (ran.log_dir / f"{JOB_ID}_{rank}_log.out").read_text()
        assert f"task {rank} recorded" in log
    assert (ran.log_dir / f"{JOB_ID}_exitcode").read_text() == "0\n"


def test_setup_lines_and_site_templates_run_in_the_batch_shell(ran):
    case = ran.case
    if case.name == "single-slurm-options":
        assert "setting up on " in ran.run.stdout
    placements = ran.log_dir / "placements.txt"
    if "templates" in case.target:  # the README's sample site template records placements
        job, _when, nodes = placements.read_text().split()
        assert (job, nodes) == (str(JOB_ID), fakeslurm.nodelist(case.nodes))
    else:
        assert not placements.exists()


def test_the_stand_ins_fail_as_the_real_programs_do(tmp_path):
    """The harness can fail. A task that exits 3 stops the step, and srun
    --kill-on-bad-exit ends with 143 (its other tasks got SIGTERM), as Slurm's does; a
    step asking for more tasks than the allocation has is refused."""
    script = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\nset -e\n"
    one_fails = "srun --ntasks=2 --kill-on-bad-exit=1 bash -c '[ \"$SLURM_PROCID\" = 1 ] && exit 3; exec sleep 60'\n"
    failing = fakeslurm.run_batch(script + one_fails, tmp_path / "a", timeout=30)
    assert failing.returncode == 143
    too_many = fakeslurm.run_batch(script + "srun --ntasks=3 true\n", tmp_path / "b")
    assert too_many.returncode == 1 and "task slots" in too_many.stderr
