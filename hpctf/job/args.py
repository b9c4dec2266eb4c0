"""The one command-line parser of the code that runs on the nodes.

Hand-written rather than argparse, which costs ~15 ms to import: the bootstrap runs at
the start of every task of every job. The bootstrap, the local ``srun`` stand-in and the
doctor's probe all read ``[OPTION ...] [--] [COMMAND ...]`` with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

FLAG = bool  # the converter that marks an option without a value


def parse_command_line(
    argv: Sequence[str],
    options: Mapping[str, Callable[[str], object]],
    *,
    usage: str | None = None,
    loose: bool = False,
) -> tuple[dict, list[str]]:
    """Options up to ``--`` (or the first word that is not one), then the command.

    ``options`` maps each option (``"--port-base"``) to the converter of its value
    (``int``, ``str`` ...; given as ``--name=V`` or ``--name V``), or to :data:`FLAG`.
    The result holds the options given, keyed ``port_base``. ``usage``: ``-h``/``--help``
    prints it and exits. ``loose`` (srun's many flags): an unknown option is kept as a
    string, its value given with ``=`` (``--mpi=pmix``), else ``"1"``.
    """
    found: dict = {}
    args = list(argv)
    while args:
        word = args.pop(0)
        if word == "--":
            break
        if usage is not None and word in ("-h", "--help"):
            raise SystemExit(print(usage) or 0)
        if not word.startswith("-"):
            args.insert(0, word)
            break
        name, sep, value = word.partition("=")
        key = name.lstrip("-").replace("-", "_")
        convert = options.get(name)
        if convert is FLAG and not sep:
            found[key] = True
        elif convert is not None and convert is not FLAG:
            if not sep:
                if not args:
                    raise ValueError(f"{name} needs a value")
                value = args.pop(0)
            try:
                found[key] = convert(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a valid value") from None
        elif loose:
            found[key] = value if sep else "1"
        else:
            raise ValueError(f"unknown option {word!r}")
    return found, args
