"""``python -m hpctf.envs ensure ...``: the batch script's call, kept by this name.

The code lives in :mod:`hpctf.job.envs` (it runs on the compute nodes); this module
re-exports it, and runs it as ``python -m hpctf.envs``.
"""

import sys

from .job.envs import *  # noqa: F403
from .job.envs import main

if __name__ == "__main__":
    sys.exit(main())
