"""Every rank reports, after an allreduce, its host and the values of the variables named
on its command line (None where unset)."""

import json
import os
import socket
import sys

from mpi4py import MPI

comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank(), op=MPI.SUM)
seen = {name: os.environ.get(name) for name in sys.argv[1:]}
report = {"rank": comm.Get_rank(), "size": comm.Get_size(), "sum": total, "host": socket.gethostname(), "env": seen}
print("ENV " + json.dumps(report), flush=True)
