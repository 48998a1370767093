"""Which client runs on which rank: K clients (data holders) on the R ranks after rank 0.

    mpirun -n 5 python split_learning.py --clients 1000     # 1,000 clients on 4 client ranks, 250 each

Clients are numbered 1..K and placed in contiguous blocks, as even as can be (np.array_split): client k runs
on rank 1 + floor((k - 1) R / K), so that with K = R, the default, client k is rank k as it always was, and
clients that take turns in order (vanilla split learning) mostly pass from one client to the next on the same
rank. A rank runs one of its clients at a time; what a client computes does not depend on where it runs (its
shard, its shuffling and its noise follow its number, not its rank), so K clients give the same numbers on any
number of ranks (tests/test_placement.py). The schedulers (``mpi_method.take_turns``) ask this class.
"""

import numpy as np

from splitlab.errors import InputError


class Placement:
    def __init__(self, num_clients, num_ranks):
        if num_clients < num_ranks:
            raise InputError(f"--clients {num_clients} is fewer than the {num_ranks} client ranks (every rank "
                             f"after rank 0 holds at least one client): use --clients {num_ranks} or more, or "
                             f"mpirun -n {num_clients + 1}")
        self.num_clients, self.num_ranks = num_clients, num_ranks
        blocks = np.array_split(np.arange(1, num_clients + 1), num_ranks)
        self._clients_on = {rank: [int(k) for k in block] for rank, block in enumerate(blocks, start=1)}
        self._rank_of = {k: rank for rank, block in self._clients_on.items() for k in block}

    @property
    def clients(self):
        """Every client, in order."""
        return list(range(1, self.num_clients + 1))

    def rank_of(self, client):
        return self._rank_of[client]

    def clients_on(self, rank):
        """The clients that rank ``rank`` holds, in order."""
        return self._clients_on[rank]

    def describe(self):
        """For the results file: how many clients each rank holds."""
        return {"clients": self.num_clients, "client_ranks": self.num_ranks,
                "clients_per_rank": [len(self._clients_on[r]) for r in sorted(self._clients_on)]}
