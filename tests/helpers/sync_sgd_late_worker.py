"""sync_sgd.py whose last worker is always late: it sends each gradient only once the server has moved on
(a newer PARAMS, or STOP, is waiting for it). So every gradient it sends during training is for an old step.

    mpirun -n 4 python tests/helpers/sync_sgd_late_worker.py [sync_sgd.py flags]
"""

import sync_sgd
from splitlab.methods.mpi_method import run_mpi_main
from splitlab.net.protocol import SERVER

compute_gradients = sync_sgd.WorkerRank.compute_gradients


def late_gradients(self):
    if self.channel.rank != self.channel.comm.Get_size() - 1:
        return compute_gradients(self)
    send = self.channel.send

    def send_once_the_server_moved_on(array, dest, tag):
        self.channel.probe(SERVER)
        send(array, dest, tag)
    self.channel.send = send_once_the_server_moved_on
    try:
        compute_gradients(self)
    finally:
        del self.channel.send


sync_sgd.WorkerRank.compute_gradients = late_gradients
run_mpi_main(sync_sgd.main)
