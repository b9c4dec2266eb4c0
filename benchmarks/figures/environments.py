"""Figure 7: a job's Python environment ready, on a cache hit, against a cache miss.

Measures the command every job with ``pip_packages`` runs in its batch step,
``python -m hpctf.envs ensure --cache DIR --pip PKG``, end to end (interpreter start
included): on a miss it creates the environment and installs the package from PyPI; on
a hit it finds the ready marker and prints the interpreter. Every miss uses a fresh
cache folder; the hits reuse the environment the first miss built. The figure a job
sees is the hit: the miss is what the first job of a new package set pays, once.
"""

from __future__ import annotations

from ..lab import Context
from ..measure import Figure, at_most, interleave, wall_ms

NUMBER = 7
NAME = "environments"
TITLE = "Environment ready (pip_packages): cache hit vs miss"
NEEDS_SLURM = False

PACKAGE = "tomli-w==1.0.0"  # small, pure Python, from PyPI


def measure(ctx: Context) -> list[Figure]:
    env = ctx.env()
    py = ctx.python

    def ensure(cache) -> list[str]:
        return [py, "-m", "hpctf.envs", "ensure", "--cache", str(cache), "--pip", PACKAGE]

    misses = []
    for i in range(ctx.repeats(full=3, quick=1)):
        misses.append(wall_ms(ensure(ctx.folder("env-miss", str(i))), env, timeout=600))
    hit_cache = ctx.folder("env-miss", "0")  # built by the first miss
    rounds = interleave(
        ctx.repeats(full=30, quick=3),
        {
            "hit": lambda: wall_ms(ensure(hit_cache), env),
            "python": lambda: wall_ms([py, "-c", "pass"], env),
        },
    )
    return [
        Figure(
            "environments.hit",
            f"`python -m hpctf.envs ensure --pip {PACKAGE}` on a cache hit (interpreter start included)",
            "ms",
            rounds["hit"],
            baseline="the same command on a cache miss (new environment, pip install from PyPI)",
            baseline_samples=misses,
            goal=at_most(2000, "ms"),
            note=f"`python -c pass` alone: {sorted(rounds['python'])[len(rounds['python']) // 2]:.0f} ms median",
        ),
        Figure(
            "environments.python",
            "`python -c pass` (what a job without packages pays for the same start)",
            "ms",
            rounds["python"],
        ),
    ]
