"""Cached job environments for ``pip_packages`` and ``conda_packages``.

The batch script runs, once per job and before any task starts::

    PYTHON=$("$PYTHON" -m hpctf.envs ensure --cache DIR [--gpu] [--pip PKG]... [--conda PKG]...)

and prints the interpreter of an environment that has the packages. Environments live
in ``DIR/<kind>-<key>``, where the key hashes everything that decides their content (the
packages, the TensorFlow requirement, the Python version and platform, the interpreter
they layer on). So:

- a package set is built once; later jobs (and every task of this job) reuse it: a cache
  hit is one ``stat`` of the ready marker;
- one job builds it, under a lock file next to it, while jobs that need the same set wait
  for that lock and then reuse the result (POSIX ``lockf`` locks, which NFS serves
  through its lock manager, so this holds across nodes);
- an environment is trusted only once its ready marker exists, written last; a failed
  or killed build leaves no marker, and the next builder removes what it left.

An environment *layers* on the interpreter that runs this module: a ``.pth`` file adds
that interpreter's site-packages after the environment's own, so hpctf, TensorFlow and
whatever else it has stay importable, and pip installs only what is missing.

This runs in the batch step on a compute node: standard library only.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

READY = "hpctf-env.json"
# Distributions that provide `import tensorflow`, and those that can use a GPU.
TF_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-intel",
    "tf-nightly",
    "intel-tensorflow",
)
TF_GPU_DISTRIBUTIONS = ("tensorflow", "tensorflow-gpu", "tf-nightly")


class EnvironmentBuildError(RuntimeError):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(f"hpctf.envs: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# What the environment must contain, and its key
# ---------------------------------------------------------------------------------------


def installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def tensorflow_requirement(explicit: str | None, gpu: bool) -> str | None:
    """The requirement that puts TensorFlow in the environment, or None if none is needed.

    A site profile's own requirement (``tensorflow = "..."``; ``""`` for none) wins.
    Otherwise the interpreter's TensorFlow is kept when it fits: any build for CPU jobs,
    a GPU-capable one for GPU jobs; else ``tensorflow[and-cuda]`` / ``tensorflow-cpu``.
    """
    if explicit is not None:
        return explicit or None
    if gpu:
        return None if any(map(installed, TF_GPU_DISTRIBUTIONS)) else "tensorflow[and-cuda]"
    return None if any(map(installed, TF_DISTRIBUTIONS)) else "tensorflow-cpu"


def base_site_packages() -> list[str]:
    """The site-packages folders of this interpreter, which an environment layers on."""
    folders = list(site.getsitepackages())
    purelib = sysconfig.get_paths()["purelib"]
    if purelib not in folders:
        folders.insert(0, purelib)
    return [f for f in folders if os.path.isdir(f)]


def environment_key(kind: str, pip: list[str], conda: list[str], tensorflow: str | None) -> str:
    facts = {
        "kind": kind,
        "pip": sorted(pip),
        "conda": sorted(conda),
        "tensorflow": tensorflow,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "base": sys.prefix,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# Ensure: hit, wait or build
# ---------------------------------------------------------------------------------------


def untrusted_writers(folder: Path, trust_group: str | None = None) -> str | None:
    """Why users other than this job's owner (or root) could change ``folder``, or None.

    A cache folder that others can write is code they can run as this job: its owner must
    be this user or root, and it must not be writable by group or others, unless the
    folder is sticky (others cannot replace what is not theirs) or its group is the one
    the site trusts (a target's ``trust_group``)."""
    import grp
    import pwd
    import stat

    st = folder.stat()
    trusted_gid = None
    if trust_group:
        try:
            trusted_gid = grp.getgrnam(trust_group).gr_gid
        except KeyError:
            return f"trust_group={trust_group!r} is not a group on {socket.gethostname()}"
    uid = os.geteuid()
    if st.st_uid not in (uid, 0):
        member = trusted_gid is not None and _in_group(st.st_uid, trusted_gid)
        if not member:
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                owner = f"uid {st.st_uid}"
            return f"it belongs to {owner}"
    if st.st_mode & stat.S_ISVTX:
        return None
    if st.st_mode & stat.S_IWOTH:
        return "everyone can write it"
    if st.st_mode & stat.S_IWGRP and st.st_gid != trusted_gid and not _private_group(st.st_gid, st.st_uid):
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = f"gid {st.st_gid}"
        return f"its group {group} can write it"
    return None


def _private_group(gid: int, uid: int) -> bool:
    """``gid`` is the user-private group of ``uid`` (Debian's and Ubuntu's convention,
    with umask 002): the user's primary group, named after the user, no other members."""
    import grp
    import pwd

    try:
        user, group = pwd.getpwuid(uid), grp.getgrgid(gid)
    except KeyError:
        return False
    return user.pw_gid == gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}


def _in_group(uid: int, gid: int) -> bool:
    import grp
    import pwd

    try:
        user = pwd.getpwuid(uid)
        return user.pw_gid == gid or user.pw_name in grp.getgrgid(gid).gr_mem
    except KeyError:
        return False


def check_cache(cache: Path, prefix: Path, trust_group: str | None = None) -> None:
    """Refuse a cache that others can write: the environment folder, its ``bin`` and the
    interpreter in it where they exist, the cache folder and every folder above it."""
    inside = [p for p in (prefix / "bin" / "python", prefix / "bin", prefix) if p.exists()]
    for folder in (*inside, cache, *cache.parents):
        if not folder.exists():
            continue
        why = untrusted_writers(folder.resolve() if folder.is_symlink() else folder, trust_group)
        if why:
            raise EnvironmentBuildError(
                f"the environment cache {cache} is not safe to use: {folder}: {why}, so other users could "
                f"change the code this job runs. Fix: chmod go-w {folder} (or chmod +t for a shared "
                "folder), choose a cache of your own (env_cache in the target, or HPCTF_ENV_CACHE), "
                "or name the group that may write it (trust_group in the target)"
            )


def ensure(
    cache: Path, pip: list[str], conda: list[str], tensorflow: str | None, trust_group: str | None = None
) -> Path:
    """The interpreter of a ready environment with these packages; builds it if needed."""
    started = time.monotonic()
    kind = "conda" if conda else "pip"
    key = environment_key(kind, pip, conda, tensorflow)
    prefix = cache / f"{kind}-{key}"
    python = prefix / "bin" / "python"
    check_cache(cache, prefix, trust_group)
    if (prefix / READY).is_file():
        log(f"cache hit: {prefix} ({time.monotonic() - started:.2f}s)")
        return python

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{kind}-{key}.lock", "a+") as lock:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            log(f"another job is building {prefix}: waiting for its lock")
            fcntl.lockf(lock, fcntl.LOCK_EX)
        if (prefix / READY).is_file():
            log(f"built by another job while this one waited: {prefix} ({time.monotonic() - started:.2f}s)")
            return python
        if prefix.exists():
            log(f"removing an unfinished build left in {prefix}")
            shutil.rmtree(prefix)
        log(f"building {prefix} for {' '.join(conda + pip + ([tensorflow] if tensorflow else []))}")
        try:
            _build(prefix, pip, conda, tensorflow)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        _write_ready(prefix, pip, conda, tensorflow)
        log(f"built {prefix} in {time.monotonic() - started:.1f}s")
    return python


def _build(prefix: Path, pip: list[str], conda: list[str], tensorflow: str | None) -> None:
    if conda:
        _create_conda(prefix, conda)
    else:
        import venv

        # No pip of its own: the layered interpreter's pip installs into the environment.
        venv.EnvBuilder(with_pip=False, symlinks=True).create(prefix)
    python = prefix / "bin" / "python"
    _layer_on_this_interpreter(python)
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        _run([python, "-m", "ensurepip", "--default-pip"], "ensurepip")
    requirements = pip + ([tensorflow] if tensorflow else [])
    if requirements:
        _run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
                "--",
                *requirements,
            ],
            "pip install",
        )


def _create_conda(prefix: Path, packages: list[str]) -> None:
    conda = shutil.which("mamba") or shutil.which("conda")
    if conda is None:
        raise EnvironmentBuildError(
            f"conda_packages were requested but neither mamba nor conda is on PATH on {socket.gethostname()}: "
            "load a module that provides one (modules=[...]), or use pip_packages"
        )
    wanted = f"python={sys.version_info.major}.{sys.version_info.minor}"
    if not any(p.split("=")[0].split("<")[0].split(">")[0].strip() == "python" for p in packages):
        packages = [wanted, *packages]
    _run([conda, "create", "--yes", "--quiet", "--prefix", str(prefix), *packages], f"{Path(conda).name} create")
    version = subprocess.run(
        [prefix / "bin" / "python", "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version != f"{sys.version_info.major}.{sys.version_info.minor}":
        raise EnvironmentBuildError(
            f"conda_packages give Python {version or '(none)'}, but the job's interpreter is "
            f"{sys.version_info.major}.{sys.version_info.minor}: hpctf layers the environment on it, "
            f"so pin {wanted} or leave python out"
        )


def _layer_on_this_interpreter(python: Path) -> None:
    """A .pth in the environment that adds this interpreter's site-packages after its own
    (``site.addsitedir``, so the .pth files there, editable installs too, are read)."""
    target = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(target).mkdir(parents=True, exist_ok=True)
    lines = [f"import site; site.addsitedir({folder!r})" for folder in base_site_packages()]
    (Path(target) / "_hpctf_layer.pth").write_text("\n".join(lines) + "\n")


def _run(command: list, what: str) -> None:
    # The installer's own output goes to stderr, the job's log; stdout is the answer.
    done = subprocess.run([str(c) for c in command], stdout=sys.stderr, stderr=sys.stderr)
    if done.returncode != 0:
        raise EnvironmentBuildError(f"{what} failed (exit {done.returncode}); see its output above", done.returncode)


def _write_ready(prefix: Path, pip: list[str], conda: list[str], tensorflow: str | None) -> None:
    info = {
        "pip": pip,
        "conda": conda,
        "tensorflow": tensorflow,
        "python": platform.python_version(),
        "base": sys.prefix,
        "built": time.time(),
        "host": socket.gethostname(),
        "job": os.environ.get("SLURM_JOB_ID"),
    }
    tmp = prefix / f".{READY}.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, prefix / READY)


# ---------------------------------------------------------------------------------------
# Command line (the batch script's call)
# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hpctf.envs",
        description="Print the interpreter of a cached environment with these packages, building it if needed.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ensure_cmd = sub.add_parser("ensure")
    ensure_cmd.add_argument(
        "--cache", required=True, type=Path, help="folder of cached environments (shared file system)"
    )
    ensure_cmd.add_argument("--pip", action="append", default=[], help="pip requirement (repeatable)")
    ensure_cmd.add_argument("--conda", action="append", default=[], help="conda package (repeatable)")
    ensure_cmd.add_argument(
        "--tensorflow",
        default=None,
        help=(
            "TensorFlow requirement ('' for none) "
            "[default: the interpreter's, else tensorflow-cpu / tensorflow[and-cuda]]"
        ),
    )
    ensure_cmd.add_argument(
        "--trust-group", default=None, help="a group whose members may write the cache (a target's trust_group)"
    )
    ensure_cmd.add_argument("--gpu", action="store_true", help="the job uses GPUs: TensorFlow must be a GPU build")
    args = parser.parse_args(argv)
    try:
        python = ensure(
            args.cache.expanduser().absolute(),
            args.pip,
            args.conda,
            tensorflow_requirement(args.tensorflow, args.gpu),
            args.trust_group,
        )
    except EnvironmentBuildError as err:
        log(f"error: {err}; no environment was kept")
        return err.code
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
