"""A Slurm batch job on one machine, with stand-ins for what a job script starts.

Runs a rendered job script's *body* the way ``sbatch`` would on an N-node allocation,
without a cluster: the batch shell gets the variables Slurm gives it (derived from the
script's own ``#SBATCH`` lines), and the programs the script calls are stand-ins on
``PATH`` that record how they were called and then do their job for real on this machine:

- ``srun``: places ``--ntasks`` tasks on the job's nodes in blocks and starts them all,
  each with the variables srun sets per task (``SLURM_PROCID``, ``SLURMD_NODENAME``,
  ``SLURM_STEP_*``; ``PMIX_RANK``/``PMI_RANK`` under ``--mpi``), output per ``--output``
  pattern; Pyxis's ``--container-image`` runs the task "in" the image;
- ``mpirun``: starts ``-np`` ranks by slot over the allocation with Open MPI's rank
  variables and the ``-x`` exports; each remote rank's ``SLURM_PROCID`` is its node's
  index (it inherits it from the orted step, as on a real cluster);
- ``apptainer``/``singularity exec``: runs the command "in" the image, with the binds
  whose source exists visible at their destination (a folder of links stands in for
  the mount namespace);
- ``python3``: the test's interpreter, except ``python3 -m hpctf.envs ...``, which
  answers with an interpreter that marks the environment (real builds are tested on
  the cluster, tests/test_environments.py);
- ``module``, ``scontrol``: record only.

Every call is a JSON file in ``calls/``. Each stand-in marks what it did in the
environment (``STANDIN_*``) so the program that finally runs can report it. This file
is both the test harness (:func:`run_batch`) and, run as a program, every stand-in.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("srun", "mpirun", "apptainer", "singularity", "module", "scontrol")


# ---------------------------------------------------------------------------------------
# The harness: one batch job
# ---------------------------------------------------------------------------------------


@dataclass
class BatchRun:
    returncode: int
    stdout: str
    stderr: str
    folder: Path

    def calls(self, tool: str) -> list[list[str]]:
        """The argv of every call of ``tool``, in call order."""
        found = [json.loads(p.read_text()) for p in (self.folder / "calls").glob(f"{tool}.*.json")]
        return [c["argv"] for c in sorted(found, key=lambda c: c["at"])]


def directives(script: str) -> dict[str, str]:
    """The script's ``#SBATCH --name=value`` lines (the header only, as sbatch reads them)."""
    found: dict[str, str] = {}
    for line in script.splitlines()[1:]:
        if line.startswith("#SBATCH "):
            for word in shlex.split(line[len("#SBATCH ") :]):
                name, _, value = word.lstrip("-").partition("=")
                found[name] = value
        elif line and not line.startswith("#"):
            break
    return found


def allocation_env(options: dict[str, str], job_id: int) -> dict[str, str]:
    """What Slurm tells the batch shell of an allocation made from ``options``."""
    nodes = int(options.get("nodes", "1"))
    if "ntasks" in options:
        # --ntasks wins; --ntasks-per-node is then a maximum. Every node gets a task, the
        # rest go to the first nodes: 4 tasks on 3 nodes is "2,1,1".
        ntasks = int(options["ntasks"])
        per_node = [ntasks // nodes + (1 if i < ntasks % nodes else 0) for i in range(nodes)]
    else:
        per_node = [int(options.get("ntasks-per-node", "1"))] * nodes
    gpus = gpus_per_node(options)
    env = {
        "SLURM_JOB_ID": str(job_id),
        "SLURM_JOBID": str(job_id),
        "SLURM_JOB_NODELIST": nodelist(nodes),
        "SLURM_NODELIST": nodelist(nodes),
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_NNODES": str(nodes),
        "SLURM_NTASKS": str(sum(per_node)),
        "SLURM_TASKS_PER_NODE": compress_counts(per_node),
        "SLURMD_NODENAME": "node1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
    }
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(gpus))
        env["SLURM_GPUS_ON_NODE"] = str(gpus)
    return env


def gpus_per_node(options: dict[str, str]) -> int:
    """``--gres=gpu[:type]:N`` or ``--gpus-per-node=[type:]N``."""
    for name in ("gres", "gpus-per-node"):
        value = options.get(name, "")
        if name == "gres" and not value.startswith("gpu"):
            continue
        if value:
            return int(value.rsplit(":", 1)[-1])
    return 0


def nodelist(nodes: int) -> str:
    return "node1" if nodes == 1 else f"node[1-{nodes}]"


def compress_counts(counts: list[int]) -> str:
    """Slurm's form of per-node counts: [2, 2, 1] -> "2(x2),1"."""
    parts, i = [], 0
    while i < len(counts):
        j = i
        while j < len(counts) and counts[j] == counts[i]:
            j += 1
        parts.append(f"{counts[i]}(x{j - i})" if j - i > 1 else str(counts[i]))
        i = j
    return ",".join(parts)


def expand_counts(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part)
        out += [int(m.group(1))] * int(m.group(2) or 1)
    return out


def install(folder: Path, python: str = sys.executable) -> Path:
    """The stand-ins' ``bin`` folder under ``folder``."""
    bin_dir = folder / "bin"
    (folder / "calls").mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    me = Path(__file__).resolve()
    for tool in TOOLS:
        _executable(bin_dir / tool, f'#!/bin/sh\nexec {shlex.quote(python)} {shlex.quote(str(me))} {tool} "$@"\n')
    # python3 is a shell script: it starts every task, so it must cost nothing. In a
    # container it is the image's bare Python: no site-packages (-S), so hpctf and what
    # it imports come from the binds on PYTHONPATH, or not at all.
    _executable(
        bin_dir / "python3",
        f"""#!/bin/bash
if [ "${{1-}}" = -m ] && [ "${{2-}}" = hpctf.envs ]; then
    exec {shlex.quote(python)} {shlex.quote(str(me))} envs "${{@:3}}"
fi
if [ -n "${{STANDIN_CONTAINER-}}" ]; then exec {shlex.quote(python)} -S "$@"; fi
exec {shlex.quote(python)} "$@"
""",
    )
    _executable(
        bin_dir / "env-python",
        f"""#!/bin/bash
export STANDIN_ENV="$(cat {shlex.quote(str(folder / "env-ensured"))})"
exec {shlex.quote(python)} "$@"
""",
    )
    return bin_dir


def run_batch(
    script: str, folder: Path, job_id: int = 4242, timeout: float = 120, python: str = sys.executable
) -> BatchRun:
    """Run ``script`` as Slurm's batch step would, with the stand-ins first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = install(folder, python)
    options = directives(script)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_", "PMI", "OMPI_", "TF_", "HPCTF_"))
    }
    env.update(allocation_env(options, job_id))
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", STANDIN_DIR=str(folder))
    path = folder / "job.sbatch"
    path.write_text(script)
    shell = subprocess.Popen(
        ["bash", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
        start_new_session=True,
    )
    try:
        stdout, stderr = shell.communicate(timeout=timeout)
    finally:  # whatever happens, nothing the job started outlives it
        try:
            os.killpg(shell.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return BatchRun(shell.returncode, stdout, stderr, folder)


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


# ---------------------------------------------------------------------------------------
# The stand-ins
# ---------------------------------------------------------------------------------------


def record(tool: str, argv: list[str]) -> None:
    folder = Path(os.environ["STANDIN_DIR"]) / "calls"
    at = time.time_ns()
    (folder / f"{tool}.{at}.{os.getpid()}.json").write_text(json.dumps({"argv": argv, "at": at}))


def split_options(argv: list[str], with_value: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Leading options and the command after them: ``--a=b``, ``-a b``/``--a b`` for
    names in ``with_value``, bare flags (value ""). An option may repeat (``-x``);
    ``-mca NAME VALUE`` takes two words."""
    options: dict[str, list[str]] = {}
    args = list(argv)
    while args and args[0].startswith("-"):
        word = args.pop(0)
        if word == "--":
            break
        name, sep, value = word.lstrip("-").partition("=")
        if not sep and name in with_value:
            value = args.pop(0)
            if name == "mca":
                value = f"{value} {args.pop(0)}"
        options.setdefault(name, []).append(value)
    return options, args


def last(options: dict[str, list[str]], *names: str, default: str = "") -> str:
    for name in names:
        if name in options:
            return options[name][-1]
    return default


def step_hosts(ntasks: int) -> list[str]:
    """Block distribution over the allocation: fill node 1's slots, then node 2's..."""
    hosts: list[str] = []
    for index, slots in enumerate(expand_counts(os.environ["SLURM_TASKS_PER_NODE"])):
        hosts += [f"node{index + 1}"] * slots
    if ntasks > len(hosts):
        sys.exit(f"srun: error: the allocation has {len(hosts)} task slots, not {ntasks}")
    return hosts[:ntasks]


def start_tasks(
    command: list[str], envs: list[dict[str, str]], outputs: list[tuple], kill_on_bad_exit: bool, cwd: str | None = None
) -> int:
    """Start every task, pass on signals, wait; with ``kill_on_bad_exit`` a failed task
    stops the others (SIGTERM). The highest exit status wins, a signal N counting 128+N."""
    children = [
        subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=cwd) for env, (out, err) in zip(envs, outputs)
    ]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, lambda s, _f: [c.send_signal(s) for c in children if c.poll() is None])
    while None in [c.poll() for c in children]:
        if kill_on_bad_exit and any(c.returncode for c in children):
            for c in children:
                if c.poll() is None:
                    c.terminate()
        time.sleep(0.02)
    return max((128 - c.returncode if c.returncode < 0 else c.returncode) for c in children)


# The end of what `srun --help` says where the Pyxis plugin is installed (job scripts
# look for it). Slurm's srun writes its help in several writes, and a reader that stops
# at the match gets srun killed by SIGPIPE: the stand-in writes line by line, slowly
# after the match, so that such a reader fails every time.
PYXIS_HELP = """\
Options provided by plugins:
      --container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH
                              [pyxis] the image to use for the container
      --container-mounts=SRC:DST[:FLAGS][,SRC:DST...]
                              [pyxis] bind mount[s] inside the container
"""


def srun_help() -> int:
    for line in PYXIS_HELP.splitlines():
        print(line, flush=True)
        if "--container-image" in line:
            time.sleep(0.2)
    return 0


def srun(argv: list[str]) -> int:
    if argv == ["--help"]:
        return srun_help()
    options, command = split_options(argv, with_value={"n", "N"})
    ntasks = int(last(options, "ntasks", "n", default=os.environ["SLURM_NTASKS"]))
    hosts = step_hosts(ntasks)
    per_node = [hosts.count(h) for h in dict.fromkeys(hosts)]
    mpi = last(options, "mpi", default="none")
    envs, outputs = [], []
    for rank, host in enumerate(hosts):
        env = dict(os.environ)
        env.update(
            SLURM_PROCID=str(rank),
            SLURM_LOCALID=str(hosts[:rank].count(host)),
            SLURM_NODEID=str(int(host.removeprefix("node")) - 1),
            SLURMD_NODENAME=host,
            SLURM_STEP_ID="0",
            SLURM_STEP_NUM_TASKS=str(ntasks),
            SLURM_STEP_NUM_NODES=str(len(per_node)),
            SLURM_STEP_NODELIST=nodelist(len(per_node)),
            SLURM_STEP_TASKS_PER_NODE=compress_counts(per_node),
        )
        if mpi == "pmix":
            env["PMIX_RANK"] = str(rank)
        elif mpi.startswith("pmi"):
            env["PMI_RANK"] = str(rank)
        if "container-image" in options:  # Pyxis: the task runs in the image
            env["STANDIN_CONTAINER"] = f"pyxis:{last(options, 'container-image')}"
        envs.append(env)
        outputs.append(tuple(_log(last(options, s), rank) for s in ("output", "error")))
    cwd = None
    if "container-image" in options:
        command = ContainerView(last(options, "container-mounts")).command(command)
        cwd = last(options, "container-workdir") or None
    return start_tasks(
        command, envs, outputs, cwd=cwd, kill_on_bad_exit=last(options, "kill-on-bad-exit", default="0") == "1"
    )


def mpirun(argv: list[str]) -> int:
    options, command = split_options(argv, with_value={"np", "n", "x", "bind-to", "map-by", "mca", "H", "host"})
    ntasks = int(last(options, "np", "n"))
    hosts = step_hosts(ntasks)  # -map-by slot: the allocation's slots in order
    exports = {}
    for item in options.get("x", []):
        name, sep, value = item.partition("=")
        if not sep and name not in os.environ:
            sys.exit(f"mpirun: -x {name}: no such variable in the environment")
        exports[name] = value if sep else os.environ[name]
    envs = []
    for rank, host in enumerate(hosts):
        env = dict(os.environ, **exports)
        env.update(
            OMPI_COMM_WORLD_RANK=str(rank),
            OMPI_COMM_WORLD_SIZE=str(ntasks),
            OMPI_COMM_WORLD_LOCAL_RANK=str(hosts[:rank].count(host)),
            OMPI_COMM_WORLD_LOCAL_SIZE=str(hosts.count(host)),
            SLURMD_NODENAME=host,
            SLURM_PROCID=str(int(host.removeprefix("node")) - 1),
            STANDIN_MPI_EXPORTS=",".join(sorted(exports)),
        )
        envs.append(env)
    # Open MPI stops the job when a rank fails.
    return start_tasks(command, envs, [(None, None)] * ntasks, kill_on_bad_exit=True)


class ContainerView:
    """The container's file system as this machine sees it: each bind whose source exists
    is a link at its destination under a folder of this process's own, and paths in the
    command are read through it (a mount namespace needs privileges a test lacks)."""

    def __init__(self, binds: str):
        self.root = Path(os.environ["STANDIN_DIR"]) / f"view-{os.getpid()}"
        self.targets: list[str] = []
        for bind in filter(None, binds.split(",")):
            source, _, rest = bind.partition(":")
            target = rest.split(":")[0] or source
            if os.path.exists(source):
                link = self.root / target.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
                self.targets.append(target)

    def path(self, word: str) -> str:
        """``word`` (a path, or NAME=path) with a path in the container made visible here."""
        name, sep, value = word.partition("=") if not word.startswith("/") else ("", "", word)
        if not value.startswith("/"):
            return word
        for target in self.targets:
            if (
                value == target
                or value.startswith(target.rstrip("/") + "/")
                or target.startswith(value.rstrip("/") + "/")
            ):
                return f"{name}{sep}{self.root}{value}"
        return word

    def command(self, argv: list[str]) -> list[str]:
        return [self.path(word) for word in argv]


def container(runtime: str, argv: list[str]) -> int:
    if not argv or argv[0] != "exec":
        sys.exit(f"{runtime} stand-in: only `exec` is known, not {argv[:1]}")
    options, rest = split_options(argv[1:], with_value={"bind", "B", "pwd"})
    image, command = rest[0], rest[1:]
    view = ContainerView(last(options, "bind", "B"))
    env = dict(os.environ, STANDIN_CONTAINER=f"{runtime}:{image}", STANDIN_CONTAINER_GPU="1" if "nv" in options else "")
    os.chdir(last(options, "pwd", default=os.getcwd()))
    return subprocess.call(view.command(command), env=env)


def envs(argv: list[str]) -> int:
    """``python -m hpctf.envs ensure ...``: the path of an interpreter marked with the request."""
    folder = Path(os.environ["STANDIN_DIR"])
    (folder / "env-ensured").write_text(shlex.join(argv))
    print(folder / "bin" / "env-python")
    return 0


def _log(pattern: str | None, rank: int):
    if not pattern:
        return None
    job = os.environ["SLURM_JOB_ID"]
    name = re.sub(r"%(.)", lambda m: {"j": job, "t": str(rank), "%": "%"}.get(m.group(1), m.group(0)), pattern)
    return open(name, "ab")


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    record(tool, args)
    if tool == "srun":
        return srun(args)
    if tool == "mpirun":
        return mpirun(args)
    if tool in ("apptainer", "singularity"):
        return container(tool, args)
    if tool == "envs":
        return envs(args)
    return 0  # module, scontrol: recorded only


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
