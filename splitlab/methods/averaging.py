"""Averaging models, as federated averaging and SplitFed do: the weighted average, client sampling, and the
aggregator that folds the clients' models into the global one (with FedAvgM/FedOpt's server step)."""

import numpy as np
import torch

from splitlab.costs.traffic import sampled_count


def weighted_average(vectors, weights):
    """Average of equally long 1-D tensors, weighted (a lone vector comes back unchanged)."""
    average = OrderedAverage(range(len(vectors)), weights)
    for i, vector in enumerate(vectors):
        average.add(i, vector)
    return average.result()


class OrderedAverage:
    """The weighted average of vectors that may arrive in any order, summed in the order of ``keys``: floating-
    point sums depend on their order, and this one does not depend on arrivals. It holds only the vectors that
    arrive ahead of their turn, not all of them (1,000 FedAvg clients: a few models, not 1,000)."""

    def __init__(self, keys, weights):
        weights = torch.tensor(weights, dtype=torch.float64)
        self.order, self.shares = list(keys), weights / weights.sum()
        self.waiting, self.total, self.term, self.summed = {}, None, None, 0

    def add(self, key, vector):
        """Take ``key``'s vector: summed now if it is its turn, else copied until it is (so a receive buffer
        may be passed and reused). The sum is made in place: no new model-sized tensor per vector."""
        if self.summed == len(self.order) or key != self.order[self.summed]:
            self.waiting[key] = vector.clone()
            return
        self._sum(vector)
        while self.summed < len(self.order) and self.order[self.summed] in self.waiting:
            self._sum(self.waiting.pop(self.order[self.summed]))

    def _sum(self, vector):
        if self.total is None:
            self.total, self.term = torch.zeros_like(vector), torch.empty_like(vector)
        torch.mul(vector, self.shares[self.summed].to(vector.dtype), out=self.term)
        self.total += self.term
        self.summed += 1

    def result(self):
        if self.summed < len(self.order):
            missing = len(self.order) - self.summed - len(self.waiting)
            raise ValueError(f"{missing} of {len(self.order)} vectors have not arrived")
        return self.total


def sample_clients(num_clients, share, seed, round_number):
    """Client indices (sorted) taking part in ``round_number``: ``share`` of them, at least one, seeded."""
    count = sampled_count(num_clients, share)
    rng = np.random.default_rng([seed, round_number])
    return sorted(rng.choice(num_clients, size=count, replace=False).tolist())


class Aggregator:
    """Holds the global model as one flat tensor; folds the clients' models into it each round."""

    def __init__(self, initial, server_momentum=0.0, server_lr=1.0):
        self.params = initial.clone()
        self.server_momentum, self.server_lr = server_momentum, server_lr
        self.velocity = torch.zeros_like(initial)

    def state_dict(self):
        return {"params": self.params, "velocity": self.velocity}

    def load_state_dict(self, state):
        self.params, self.velocity = state["params"].clone(), state["velocity"].clone()

    def step(self, average):
        """Move the global model given the clients' weighted ``average``."""
        if self.server_momentum == 0 and self.server_lr == 1:
            self.params = average
        else:  # FedAvgM/FedOpt: treat (global - average) as a gradient and take a momentum step on it
            self.velocity = self.server_momentum * self.velocity + (self.params - average)
            self.params = self.params - self.server_lr * self.velocity
