"""federated_learning.py over MPI whose client rank 2 stops itself with SIGSTOP in its first round (a hung data
holder), for the stall test.

    mpirun -n 3 python tests/helpers/federated_stop.py [federated_learning.py flags]
"""

import os
import signal

import federated_learning
from splitlab.methods.mpi_method import run_mpi_main

train_round = federated_learning.ClientRank.train_round


def stopping_round(self, **command):
    if self.channel.rank == 2:
        os.kill(os.getpid(), signal.SIGSTOP)
    train_round(self, **command)


federated_learning.ClientRank.train_round = stopping_round
run_mpi_main(federated_learning.main)
