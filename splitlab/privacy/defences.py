"""A defence of FedAvg's leg: the clipped, noised update a client sends instead of its own (DP-FedAvg's client
side), used by the method (federated.py) and by the attack that must see what the server sees (update_attack.py).
"""

import numpy as np
import torch


def clip_and_noise(update, clip, noise_multiplier, generator):
    """A client's update (new minus old parameters, one flat tensor) as DP-FedAvg sends it (McMahan et al. 2018,
    "Learning Differentially Private Recurrent Language Models"): scaled down to an L2 norm of at most ``clip``,
    then Gaussian noise of standard deviation ``noise_multiplier`` x ``clip`` added to every coordinate. ``clip``
    0: the update unchanged."""
    if not clip:
        return update
    clipped = update * min(1.0, clip / max(float(update.norm()), 1e-12))
    return clipped + noise_multiplier * clip * torch.randn(update.shape, generator=generator, dtype=update.dtype)


def update_noise_generator(seed, client, round_number):
    """The noise of one client's update in one round: the same in one process and over MPI."""
    state = np.random.SeedSequence([seed, client, round_number, 7]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))
