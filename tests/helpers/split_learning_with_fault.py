"""split_learning.py with a fault planted in one client, for the failure tests.

    mpirun -n 3 python tests/helpers/split_learning_with_fault.py raise|kill [split_learning.py flags]

Rank 2 raises an exception (``raise``) or kills itself with SIGKILL (``kill``) in its first turn.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import split_learning  # noqa: E402
from mpi_method import run_mpi_main  # noqa: E402

fault = sys.argv.pop(1)
take_turn = split_learning.Client.take_turn


def faulty_turn(self, **command):
    if self.channel.rank == 2:
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("planted fault in client 2")
    take_turn(self, **command)


split_learning.Client.take_turn = faulty_turn
run_mpi_main(split_learning.main)
