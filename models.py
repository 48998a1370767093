"""The networks the suite trains, and their splits into a client part and a server part at a cut point.

Every network is a flat ``nn.Sequential`` of blocks, so a split is a slice: ``model[:cut]`` runs on the client
and ``model[cut:]`` on the server, and the two together are exactly the whole network (same modules, same
weights, same order of operations). The cut points are the block boundaries before the last block (the
classifier); what the server receives at a cut, and what a U-shaped client's head receives, are derived from
the network, not written down.

    lenet5         LeNet-5 with ReLU, first convolution padded (61,706 parameters; 6x14x14 at cut 1): the suite's
    lenet5-report  the network of the report's own code (bt-s/Split-Learning-and-Federated-Learning): first
                   convolution unpadded, 6x12x12 at cut 1, 16x4x4 into the classifier (44,426 parameters)
    vgg-small      three VGG blocks of two 3x3 convolutions (16, 32, 64 channels) and a classifier of
                   1,024-wide layers (1.72 M parameters), where the report's bandwidth argument may hold
"""

import splitlab  # noqa: F401  (the suite's process settings, which must precede torch)

from functools import lru_cache

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)


def _lenet5_blocks(padding):
    """LeNet-5 with ReLU and max pooling; ``padding`` 2 on the first convolution keeps 28x28 (the suite's), 0
    gives the report's 24x24."""
    flat = 16 * 5 * 5 if padding else 16 * 4 * 4
    return [nn.Sequential(nn.Conv2d(1, 6, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))]


def _vgg_blocks():
    def block(inputs, outputs):
        return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(outputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    return [block(1, 16), block(16, 32), block(32, 64),  # 28 -> 14 -> 7 -> 3
            nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                          nn.Linear(1024, 10))]


ARCHITECTURES = {"lenet5": lambda: _lenet5_blocks(padding=2), "lenet5-report": lambda: _lenet5_blocks(padding=0),
                 "vgg-small": _vgg_blocks}
MODELS = list(ARCHITECTURES)


def build(name="lenet5", seed=None):
    """The network ``name`` with He-initialised weights. Pass ``seed`` for reproducible weights (drawn from
    torch's generator seeded so, which is then restored: the process's other random draws are left alone)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if seed is None:
        return _initialised(nn.Sequential(*ARCHITECTURES[name]()))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _initialised(nn.Sequential(*ARCHITECTURES[name]()))


def _initialised(model):
    # He initialisation suits ReLU (PyTorch's default is scaled for no activation); docs/findings.md, "Choices".
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return model


def lenet5(seed=None):
    """The suite's LeNet-5 (``build("lenet5", seed)``)."""
    return build("lenet5", seed)


@lru_cache(maxsize=None)
def _block_count(name):
    return len(ARCHITECTURES[name]())


def cut_points(name):
    """The cuts ``name`` can be split at: after each block but the classifier."""
    return list(range(1, _block_count(name)))


@lru_cache(maxsize=None)
def head_choices(name):
    """How many fully connected layers a U-shaped client can keep: all but the classifier's first."""
    return tuple(range(1, sum(isinstance(m, nn.Linear) for m in ARCHITECTURES[name]()[-1])))


def check_split(name, cut_layer, head_layers=None):
    """ValueError naming the choices when ``name`` has no such cut (or U-shaped head)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if cut_layer not in cut_points(name):
        raise ValueError(f"{name} has cut points {', '.join(map(str, cut_points(name)))}, not {cut_layer}")
    if head_layers is not None and head_layers not in head_choices(name):
        raise ValueError(f"a U-shaped client of {name} keeps {', '.join(map(str, head_choices(name)))} fully "
                         f"connected layers, not {head_layers}")


@lru_cache(maxsize=None)
def cut_shape(name, cut_layer, bottleneck=None):
    """Shape of one example's activations at ``cut_layer``: what the server receives for it (with a
    ``bottleneck`` of C channels at the cut, C of them)."""
    check_split(name, cut_layer)
    with torch.no_grad():
        shape = tuple(nn.Sequential(*ARCHITECTURES[name]()[:cut_layer])(torch.zeros(1, *IMAGE_SHAPE)).shape[1:])
    return shape if bottleneck is None else (bottleneck, *shape[1:])


@lru_cache(maxsize=None)
def head_shape(name, head_layers):
    """Shape of one example's input to a U-shaped client's head of ``head_layers`` layers."""
    linears = [m for m in ARCHITECTURES[name]()[-1] if isinstance(m, nn.Linear)]
    return (linears[-head_layers].in_features,)


def split(name="lenet5", cut_layer=1, seed=None, bottleneck=None):
    """``(client_part, server_part)``: network ``name`` cut after block ``cut_layer``. With a ``bottleneck`` of C
    channels, the client part ends with a 1x1 convolution down to C channels and the server part begins with
    one back up and a ReLU (what the cut's next block expects: the pooled output of a ReLU), He-initialised
    from ``seed`` too (``--compress bottleneck:C``, splitlab/training/codec.py)."""
    check_split(name, cut_layer)
    model = build(name, seed)
    client, server = model[:cut_layer], model[cut_layer:]
    if bottleneck is None:
        return client, server
    channels = cut_shape(name, cut_layer)[0]
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        down, up = nn.Conv2d(channels, bottleneck, 1), nn.Conv2d(bottleneck, channels, 1)
        _initialised(nn.Sequential(down, up))
    return nn.Sequential(*client, down), nn.Sequential(up, nn.ReLU(), *server)


def split_u_shaped(name="lenet5", cut_layer=1, head_layers=1, seed=None, bottleneck=None):
    """``(front, middle, head)``: network ``name`` cut after block ``cut_layer`` and again before its last
    ``head_layers`` fully connected layers. The client holds front and head, the server the middle."""
    check_split(name, cut_layer, head_layers)
    front, rest = split(name, cut_layer, seed, bottleneck)
    classifier = rest[-1]  # Flatten, then Linear and ReLU in turn, ending with a Linear
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
