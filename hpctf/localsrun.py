"""The local target's ``srun`` stand-in by its former name: :mod:`hpctf.job.local_srun`.

Kept for the ``srun`` shims of local runs started before it moved, which run
``python -m hpctf.localsrun``.
"""

import sys

from .job.local_srun import main

if __name__ == "__main__":
    sys.exit(main())
