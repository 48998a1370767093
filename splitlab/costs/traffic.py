"""What each method moves over the network in one epoch (one round for FedAvg), in closed form.

Singh et al. (2019, "Detailed comparison of communication efficiency of split learning and federated learning")
give split learning 2pq per epoch (activations up, their gradients down) and FedAvg 2NK per round (the model
down and up). Here every array the suite sends is a term of its own, so that the bytes a run measures equal the
formula but for its control messages (small JSON objects: a few hundred bytes a client and epoch), which
``bytes_per_epoch`` leaves out. Notation, for one epoch:

    n      training images (all clients together)        t   test images, evaluated through one client part
    N      clients                                       s   training steps of sync SGD (min shard // batch)
    c      floats per image at the cut                   h   floats per image entering a U-shaped client's head
    p      client-part parameters                        P   the whole model's parameters
    4 bytes a float, 8 a label

    vanilla       n (2 x 4c + 8) + t 4c                     [+ hand-overs: H x 4 x (p + momentum p)]
    u-shaped      2n x 4(c + h) + t 4(c + h)                [+ hand-overs as vanilla]
    sflv1, sflv2  vanilla's + 2N x 4p                       (each client's part up, the average down)
    local-loss    n (4c + 8) + t 4c                         (activations and labels up; no gradient down)
    FedAvg        2N x 4P                                   (the sampled clients: the model down and up)
    sync SGD      s N x 4 (2P + 4)                          (parameters and step down; gradient, step, loss, worker up)

With a codec at the cut (--compress, --compress-grad; splitlab/training/codec.py) each example's 4c (or 4h) bytes
of activations or gradients become ``row_bytes(codec, c)``: 4c uncoded; 8 + ceil(c b / 8) quantised to b bits (the
row's least and greatest value, then the codes); k (4 + 2) for top-k with k = ceil(F c) (values, uint16 positions;
4-byte positions past 65,536 values). A FedAvg update coded is ``row_bytes`` summed over the parameter tensors.

With ``--client-weights pass`` a client hands its part and momentum to the next: N - 1 hand-overs in the first
epoch, N in every later one (the last client of an epoch hands over to the first of the next).
"""

import math

FLOAT, LABEL = 4, 8


def row_bytes(codec, values):
    """Bytes of one row of ``values`` values coded with ``codec`` (a --compress codec name; see the module)."""
    if codec == "none":
        return FLOAT * values
    if codec in ("int8", "int4"):
        return 2 * FLOAT + math.ceil(values * int(codec[3:]) / 8)
    kept = max(1, math.ceil(float(codec.split(":")[1]) * values))
    return kept * (FLOAT + (2 if values <= 2 ** 16 else 4))


def split_epoch_bytes(variant, n, t, clients, c, p=0, h=0, handovers=0, momentum=True, evaluated=1, codec="none",
                      grad_codec=None):
    """Bytes of one epoch of split learning ``variant`` (see the module's table), with ``evaluated`` client parts
    evaluated on the test set (1; every client's with --client-eval epoch), activations coded with ``codec`` and
    gradients with ``grad_codec`` (default: ``codec``)."""
    grad_codec = codec if grad_codec is None else grad_codec

    def up(values):
        return row_bytes(codec, values)

    def down(values):
        return row_bytes(grad_codec, values)

    if variant == "u-shaped":
        moved = n * (up(c) + up(h) + down(h) + down(c)) + evaluated * t * (up(c) + up(h))
    elif variant == "local-loss":
        moved = n * (up(c) + LABEL) + evaluated * t * up(c)
    else:
        moved = n * (up(c) + down(c) + LABEL) + evaluated * t * up(c)
    if variant in ("sflv1", "sflv2"):
        moved += 2 * clients * FLOAT * p
    return moved + handovers * FLOAT * p * (2 if momentum else 1)


def sampled_count(num_clients, share):
    """How many of ``num_clients`` a FedAvg round samples with ``--fraction share``: the share, at least one."""
    return max(1, round(share * num_clients))


def fedavg_round_bytes(sampled, P, sizes=(), codec="none", down_codec="none"):
    """Bytes of one FedAvg round: the model down to each sampled client and its model back; with a ``codec`` (and
    a ``down_codec``), each coded a row a parameter tensor (``sizes``: each tensor's values)."""
    def model(name):
        return FLOAT * P if name == "none" else sum(row_bytes(name, values) for values in sizes)
    return sampled * (model(down_codec) + model(codec))


def sync_sgd_epoch_bytes(steps, workers, P):
    """Bytes of one epoch of sync SGD: per step and worker, the parameters and the step number down, the
    gradient, the step, the batch loss and the worker's number up."""
    return steps * workers * FLOAT * ((P + 1) + (P + 3))


# ------------------------------------------------------------------------------------------------ the figure

def crossover(split_bytes, fedavg_bytes_per_client):
    """The number of clients above which FedAvg moves more per epoch than split learning's ``split_bytes``."""
    return split_bytes / fedavg_bytes_per_client
