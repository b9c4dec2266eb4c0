"""Figure 11: resubmitting a large source folder, against a one-file folder and `cp -r`.

The folder holds 2,000 files of 100 KB (200 MB).  A resubmit of it, unchanged, should
cost about what a submit of a one-file folder costs: the snapshot's stat cache knows
every file, so none is read.  Measured side by side in the same rounds: that resubmit,
a submit of a one-file folder, a resubmit with the cache removed first (every file read
and hashed again, as every resubmit did before the cache) and ``cp -r`` of the folder.
All jobs are held (``--sbatch hold``) and cancelled at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..lab import Context
from ..measure import Figure, interleave, ratio_at_most, run, wall_ms

NUMBER = 11
NAME = "snapshot"
TITLE = "Resubmitting a large source folder"
NEEDS_SLURM = True

RACY_S = 2.1  # hpctf.hashcache.RACY_NS and a little: younger files are always read again


def make_folder(folder: Path, files: int, size: int) -> None:
    for i in range(files):
        sub = folder / f"pkg{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"part{i:04d}.bin").write_bytes(os.urandom(size))
    (folder / "train.py").write_text("print('hello from a benchmark job')\n")


def measure(ctx: Context) -> list[Figure]:
    files, size = ctx.sizes([2_000], [50])[0], ctx.sizes([100 * 1024], [10 * 1024])[0]
    home = ctx.folder("homes", "snapshot")
    env = ctx.env(home=home)
    big, small = ctx.folder("snapshot-src", "big"), ctx.folder("snapshot-src", "small")
    make_folder(big, files, size)
    (small / "train.py").write_text("print('hello from a benchmark job')\n")
    copies = ctx.folder("snapshot-copies")

    def submit(folder: Path) -> float:
        cmd = [ctx.hpctf, "submit", "--time", "1", "--sbatch", "hold", "--json", str(folder / "train.py")]
        wall, done = run(cmd, env)
        ctx.track(json.loads(done.stdout)["job_id"])
        return wall * 1000

    def uncached() -> float:
        shutil.rmtree(home / "cache", ignore_errors=True)
        return submit(big)

    def copy() -> float:
        dest = copies / "big"
        shutil.rmtree(dest, ignore_errors=True)
        return wall_ms(["cp", "-r", str(big), str(dest)], env)

    time.sleep(RACY_S)  # files just written are read on every scan until they are older than one
    submit(big), submit(big), submit(small), copy()  # warm-up: bytecode, objects, the stat cache
    t = interleave(
        ctx.repeats(full=15, quick=2),
        {"resubmit": lambda: submit(big), "small": lambda: submit(small), "uncached": uncached, "cp": copy},
    )
    shutil.rmtree(copies, ignore_errors=True)
    what = f"{files:,} files, {files * size / 1e6:.0f} MB"
    return [
        Figure(
            "snapshot.resubmit",
            f"`hpctf submit` of an unchanged folder ({what}), fresh process",
            "ms",
            t["resubmit"],
            baseline="`hpctf submit` of a one-file folder",
            baseline_samples=t["small"],
            paired=True,
            goal=ratio_at_most(1.2),
            note="no file is read: the snapshot's stat cache knows them all",
        ),
        Figure(
            "snapshot.resubmit_vs_cp",
            f"`hpctf submit` of an unchanged folder ({what}) ÷ `cp -r` of it",
            "ms",
            t["resubmit"],
            baseline="`cp -r` of the same folder",
            baseline_samples=t["cp"],
            paired=True,
        ),
        Figure(
            "snapshot.uncached",
            f"`hpctf submit` of the same folder with the stat cache removed first: every file read and hashed ({what})",
            "ms",
            t["uncached"],
            baseline="`cp -r` of the same folder",
            baseline_samples=t["cp"],
            paired=True,
            note="informational: what every resubmit cost before the cache (objects already stored)",
        ),
    ]
