"""Averaging models, as federated averaging and SplitFed do: the weighted average, client sampling, and the
aggregator that folds the clients' models into the global one (with FedAvgM/FedOpt's server step)."""

import numpy as np
import torch


def weighted_average(vectors, weights):
    """Average of equally long 1-D tensors, weighted (a lone vector comes back unchanged)."""
    weights = torch.tensor(weights, dtype=torch.float64)
    shares = (weights / weights.sum()).to(vectors[0].dtype)
    return sum(share * vector for share, vector in zip(shares, vectors))


def sample_clients(num_clients, share, seed, round_number):
    """Client indices (sorted) taking part in ``round_number``: ``share`` of them, at least one, seeded."""
    count = max(1, round(share * num_clients))
    rng = np.random.default_rng([seed, round_number])
    return sorted(rng.choice(num_clients, size=count, replace=False).tolist())


class Aggregator:
    """Holds the global model as one flat tensor; folds the clients' models into it each round."""

    def __init__(self, initial, server_momentum=0.0, server_lr=1.0):
        self.params = initial.clone()
        self.server_momentum, self.server_lr = server_momentum, server_lr
        self.velocity = torch.zeros_like(initial)

    def aggregate(self, client_params, num_examples):
        average = weighted_average(client_params, num_examples)
        if self.server_momentum == 0 and self.server_lr == 1:
            self.params = average
        else:  # FedAvgM/FedOpt: treat (global - average) as a gradient and take a momentum step on it
            self.velocity = self.server_momentum * self.velocity + (self.params - average)
            self.params = self.params - self.server_lr * self.velocity
