"""LeNet-5 with ReLU, and its split into a client part and a server part at a cut layer.

The network is a flat ``nn.Sequential`` of blocks, so a split is a slice: ``model[:cut]`` runs on the client
and ``model[cut:]`` on the server, and the two together are exactly the whole network (same modules, same
weights, same order of operations).
"""

import torch
from torch import nn

# Shape of one example's activations after each cut layer (channels, height, width): what the server sees.
CUT_SHAPES = {1: (6, 14, 14), 2: (16, 5, 5)}
# U-shaped split: the client keeps the last ``head_layers`` fully connected layers; the server sends it the
# activations that enter them, of this shape per example.
HEAD_SHAPES = {1: (84,), 2: (120,)}


def lenet5(seed=None):
    """LeNet-5 with ReLU for 1x28x28 inputs and 10 classes. Pass ``seed`` for reproducible initial weights (drawn
    from torch's generator seeded so, which is then restored: the rest of the process's random draws are left
    alone)."""
    if seed is None:
        return _lenet5()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _lenet5()


def _lenet5():
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),  # block 1 -> 6x14x14
        nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),  # block 2 -> 16x5x5
        nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        ),
    )
    # He initialisation suits ReLU (PyTorch's default is scaled for no activation); README, "Choices".
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return model


def split_lenet5(cut_layer=1, seed=None):
    """Return ``(client_part, server_part)``: LeNet-5 cut after conv block ``cut_layer`` (1 or 2)."""
    if cut_layer not in CUT_SHAPES:
        raise ValueError(f"cut layer must be one of {sorted(CUT_SHAPES)}, not {cut_layer}")
    model = lenet5(seed)
    return model[:cut_layer], model[cut_layer:]


def split_u_shaped(cut_layer=1, head_layers=1, seed=None):
    """Return ``(front, middle, head)``: LeNet-5 cut after conv block ``cut_layer`` and again before its last
    ``head_layers`` fully connected layers. The client holds front and head, the server the middle."""
    if head_layers not in HEAD_SHAPES:
        raise ValueError(f"head layers must be one of {sorted(HEAD_SHAPES)}, not {head_layers}")
    front, rest = split_lenet5(cut_layer, seed)
    classifier = rest[-1]  # Flatten, Linear, ReLU, Linear, ReLU, Linear
    keep = len(classifier) - (2 * head_layers - 1)
    return front, nn.Sequential(*rest[:-1], classifier[:keep]), classifier[keep:]


def flatten(tensors):
    """The tensors, one after another, as one new contiguous 1-D tensor (what goes over the wire)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


@torch.no_grad()
def unflatten_into(tensors, flat):
    """Copy a tensor made by :func:`flatten` back into ``tensors``, in place.

    A copy, not torch's ``vector_to_parameters``, which makes the tensors views of ``flat``: training would
    then write into ``flat``, which may be the global model that other clients are still to start from.
    """
    tensors = list(tensors)
    expected = sum(t.numel() for t in tensors)
    if flat.numel() != expected:
        raise ValueError(f"{flat.numel()} values for tensors with {expected} in all")
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def flat_parameters(model):
    """All parameters of ``model`` as one new 1-D tensor (what FedAvg and sync SGD send)."""
    return flatten(model.parameters())


def load_flat_parameters(model, flat):
    """Copy a tensor made by :func:`flat_parameters` into ``model``'s parameters."""
    unflatten_into(model.parameters(), flat)
