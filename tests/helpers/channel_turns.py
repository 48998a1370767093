"""The split-learning message pattern on a bare Channel, for the messaging tests.

    mpirun -n N python tests/helpers/channel_turns.py [POLL_RANK_0 POLL_OTHERS]

All ranks report their rank to rank 0 (``Channel.gather``); then rank 0 gives each other rank a turn of a few
rounds; in each, the rank sends a large array (single-copy transfer in MPICH) and a small one, and rank 0
answers with a large one.
Every array carries values that say who sent it and when, and the receiver checks them. The doorbell's
time-out is made huge: a wake-up that is lost (a message that arrives unnoticed) hangs this run instead of
slowing it. POLL_RANK_0 and POLL_OTHERS (seconds, default 0) make the ranks poll that long before they sleep,
as process_policy lets ranks do where cores are to spare: an hour on one side means a rank that only rang its
receivers once it stopped polling would never wake them, and the run hangs.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

from splitlab.net import messaging

messaging.BELL_TIMEOUT = 3600.0
ROUNDS, BIG, SMALL = 5, 64 * 6 * 14 * 14, 64
TURN, ACTIVATIONS, LABELS, GRADIENT, STOP = 1, 10, 11, 12, 4

channel = messaging.Channel(MPI.COMM_WORLD)
if len(sys.argv) > 2:
    channel.poll_s = float(sys.argv[1] if channel.rank == 0 else sys.argv[2])
reported = channel.gather([channel.rank, channel.rank * 0.5])
if channel.rank == 0:
    assert reported == [[r, r * 0.5] for r in range(MPI.COMM_WORLD.Get_size())], reported
big, small = np.empty(BIG, np.float32), np.empty(SMALL, np.int64)
if channel.rank == 0:
    for client in range(1, MPI.COMM_WORLD.Get_size()):
        channel.send_obj({"rounds": ROUNDS}, client, TURN)
        for step in range(ROUNDS):
            channel.recv(big, client, ACTIVATIONS)
            channel.recv(small, client, LABELS)
            assert (big == client * 1000 + step).all() and (small == step).all(), (client, step)
            channel.send(np.full(BIG, -step, np.float32), client, GRADIENT)
        channel.recv_obj(client, TURN)
    for client in range(1, MPI.COMM_WORLD.Get_size()):
        channel.send_obj({}, client, STOP)
    channel.flush()
    print("all turns done")
else:
    while channel.probe(0).Get_tag() == TURN:
        rounds = channel.recv_obj(0, TURN)["rounds"]
        for step in range(rounds):
            time.sleep(0.02)  # a client computes before it sends: rank 0 is asleep by then
            channel.send(np.full(BIG, channel.rank * 1000 + step, np.float32), 0, ACTIVATIONS)
            channel.send(np.full(SMALL, step, np.int64), 0, LABELS)
            channel.recv(big, 0, GRADIENT)
            assert (big == -step).all(), (channel.rank, step)
        channel.send_obj({}, 0, TURN)
    channel.recv_obj(0, STOP)
    channel.flush()
    assert not channel.sending
