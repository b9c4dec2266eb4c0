"""``python -m hpctf.cli``: the ``hpctf`` command."""

from . import main

main()
