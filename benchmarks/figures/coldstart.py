"""Figure 2: cold start of `hpctf --help` and `hpctf render` against importing jinja2.

Each sample is a fresh process.  ``python -X importtime`` then lists every module those
two commands import: none may come from submitit, TensorFlow, Horovod or mpi4py.
"""

from __future__ import annotations

from ..lab import Context
from ..measure import Figure, exactly, interleave, ratio_at_most, run, wall_ms

NUMBER = 2
NAME = "coldstart"
TITLE = "Cold start of the CLI"
NEEDS_SLURM = False

HEAVY = ("submitit", "tensorflow", "horovod", "mpi4py")
LABEL = {"help": "hpctf --help", "render": "hpctf render", "submit": "hpctf submit --dry-run"}


def imported_modules(ctx: Context, args: list[str], env: dict[str, str]) -> list[str]:
    """Every module `hpctf ARGS` imports, from ``python -X importtime`` (stderr)."""
    _, done = run([ctx.python, "-X", "importtime", ctx.hpctf, *args], env)
    names = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.append(name)
    return names


def heavy(modules: list[str]) -> list[str]:
    return sorted({m for m in modules if m.split(".")[0] in HEAVY})


def measure(ctx: Context) -> list[Figure]:
    env = ctx.env(home=ctx.folder("homes", "coldstart"))
    train = ctx.train_script()
    logs = ctx.folder("coldstart-logs")
    render_args = ["render", "--log-dir", str(logs), str(train)]
    commands = {
        "help": [ctx.hpctf, "--help"],
        "render": [ctx.hpctf, *render_args],
        "jinja2": [ctx.python, "-c", "import jinja2"],
        # The floor of a click command line that renders with Jinja: what render cannot shed.
        "jinja2_click": [ctx.python, "-c", "import jinja2, click"],
    }
    # As this machine runs an editable install when PYTHONDONTWRITEBYTECODE=1 is set:
    # hpctf's own modules are compiled from source in every process.
    no_cache = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
    no_cache["PYTHONDONTWRITEBYTECODE"] = "1"
    variants = {name: (lambda c=cmd: wall_ms(c, env)) for name, cmd in commands.items()}
    variants["render_no_pyc"] = lambda: wall_ms(commands["render"], no_cache)
    # A login node's first render: Jinja compiles the templates (later ones load them).
    no_template_cache = {**env, "HPCTF_TEMPLATE_CACHE": "0"}
    variants["render_first"] = lambda: wall_ms(commands["render"], no_template_cache)
    for fn in variants.values():
        fn()  # warm-up: fills the bytecode cache
    t = interleave(ctx.repeats(full=40, quick=3), variants)

    figures = [
        Figure(
            f"coldstart.{name}",
            f"`{LABEL[name]}` cold start, fresh process",
            "ms",
            t[name],
            baseline='`python -c "import jinja2"`',
            baseline_samples=t["jinja2"],
            paired=True,
            goal=ratio_at_most(1.5),
        )
        for name in ("help", "render")
    ]
    # `submit --dry-run` is checked too: submitting never needs submitit either.
    dry_run = ["submit", "--dry-run", "--json", str(train)]
    for name, args in (("help", ["--help"]), ("render", render_args), ("submit", dry_run)):
        modules = imported_modules(ctx, args, env)
        found = heavy(modules)
        figures.append(
            Figure(
                f"coldstart.{name}.heavy_imports",
                f"heavy modules imported by `{LABEL[name]}` ({', '.join(HEAVY)})",
                "modules",
                [float(len(found))],
                goal=exactly(0, "modules"),
                note=("found: " + ", ".join(found)) if found else f"none ({len(modules)} modules imported in all)",
                extra={"heavy": found, "modules_imported": len(modules)},
            )
        )
    figures.append(
        Figure(
            "coldstart.render.vs_click",
            "`hpctf render` cold start against its floor: Jinja and the click command line",
            "ms",
            t["render"],
            baseline='`python -c "import jinja2, click"`',
            baseline_samples=t["jinja2_click"],
            paired=True,
            note="informational: what hpctf's own modules and the rendering add",
        )
    )
    figures.append(
        Figure(
            "coldstart.render.first",
            "`hpctf render` with no compiled templates kept (HPCTF_TEMPLATE_CACHE=0): a login node's first render",
            "ms",
            t["render_first"],
            baseline='`python -c "import jinja2"`',
            baseline_samples=t["jinja2"],
            note="informational: later renders load the templates Jinja compiled (coldstart.render)",
        )
    )
    figures.append(
        Figure(
            "coldstart.render.no_pyc",
            "`hpctf render` with PYTHONDONTWRITEBYTECODE=1 (editable install: hpctf recompiled each time)",
            "ms",
            t["render_no_pyc"],
            baseline='`python -c "import jinja2"`',
            baseline_samples=t["jinja2"],
            note="informational: how this machine's environment runs it; the figures above use a bytecode cache",
        )
    )
    return figures
