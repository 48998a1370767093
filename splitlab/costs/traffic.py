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
    FedAvg        2N x 4P                                   (the sampled clients: the model down and up)
    sync SGD      s N x 4 (2P + 4)                          (parameters and step down; gradient, step, loss, worker up)

With ``--client-weights pass`` a client hands its part and momentum to the next: N - 1 hand-overs in the first
epoch, N in every later one (the last client of an epoch hands over to the first of the next).
"""

FLOAT, LABEL = 4, 8


def split_epoch_bytes(variant, n, t, clients, c, p=0, h=0, handovers=0, momentum=True, evaluated=1):
    """Bytes of one epoch of split learning ``variant`` (see the module's table), with ``evaluated`` client parts
    evaluated on the test set (1; every client's with --client-eval epoch)."""
    if variant == "u-shaped":
        moved = 2 * n * FLOAT * (c + h) + evaluated * t * FLOAT * (c + h)
    else:
        moved = n * (2 * FLOAT * c + LABEL) + evaluated * t * FLOAT * c
    if variant in ("sflv1", "sflv2"):
        moved += 2 * clients * FLOAT * p
    return moved + handovers * FLOAT * p * (2 if momentum else 1)


def sampled_count(num_clients, share):
    """How many of ``num_clients`` a FedAvg round samples with ``--fraction share``: the share, at least one."""
    return max(1, round(share * num_clients))


def fedavg_round_bytes(sampled, P):
    """Bytes of one FedAvg round: the model down to each sampled client and its model back."""
    return 2 * sampled * FLOAT * P


def sync_sgd_epoch_bytes(steps, workers, P):
    """Bytes of one epoch of sync SGD: per step and worker, the parameters and the step number down, the
    gradient, the step, the batch loss and the worker's number up."""
    return steps * workers * FLOAT * ((P + 1) + (P + 3))


# ------------------------------------------------------------------------------------------------ the figure

def crossover(split_bytes, fedavg_bytes_per_client):
    """The number of clients above which FedAvg moves more per epoch than split learning's ``split_bytes``."""
    return split_bytes / fedavg_bytes_per_client
