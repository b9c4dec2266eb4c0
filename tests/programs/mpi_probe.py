"""MPI probe: allreduce of ranks; every rank reports its host and visible GPU."""

import json
import os
import socket

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank, op=MPI.SUM)
print(
    "PROBE "
    + json.dumps(
        {
            "rank": rank,
            "size": size,
            "sum": total,
            "host": socket.gethostname(),
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "local_rank": int(os.environ["HPCTF_LOCAL_RANK"]),
            "hpctf_rank": int(os.environ["HPCTF_RANK"]),
        }
    ),
    flush=True,
)
