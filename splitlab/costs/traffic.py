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


def figure(path, results_dirs=("results",), n=60000, t=10000):
    """Bytes per epoch against the number of clients for every model: FedAvg's line, vanilla split learning's
    at each cut, the crossovers marked, and the measured epochs of the results files in ``results_dirs`` (full
    data only) as points: the last epoch, which carries no set-up."""
    import json
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from models import MODELS, build, cut_points, cut_shape, split

    clients = np.logspace(0, 4, 200)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for colour, name in zip(("C0", "C1", "C2"), MODELS):
        P = sum(x.numel() for x in build(name).parameters())
        ax.plot(clients, fedavg_round_bytes(clients, P), color=colour, label=f"{name}: FedAvg")
        for style, cut in zip(("--", ":", "-."), cut_points(name)):
            c = int(np.prod(cut_shape(name, cut)))
            p = sum(x.numel() for x in split(name, cut)[0].parameters())
            line = [split_epoch_bytes("vanilla", n, t, k, c, p) for k in clients]
            ax.plot(clients, line, color=colour, linestyle=style, label=f"{name}: split learning, cut {cut}")
            k = crossover(line[0], 2 * FLOAT * P)
            ax.plot([k], [fedavg_round_bytes(k, P)], "o", color=colour, markerfacecolor="white")
            ax.annotate(f"{k:,.0f}", (k, fedavg_round_bytes(k, P)), textcoords="offset points", xytext=(4, -12),
                        fontsize=7, color=colour)
    for path_ in sorted(p for folder in results_dirs for p in Path(folder).glob("*.json")):  # the measured points
        try:
            run = json.loads(path_.read_text())
            model = run["config"].get("model", "lenet5")
            k = len(run["shard_sizes"]) if run.get("shard_sizes") else run["config"].get("clients")
            if run["method"] in ("split", "federated") and k and run["config"].get("train_subset") is None:
                measured = run["epochs"][-1]["bytes_sent"] or run["epochs"][-1].get("model_bytes_up", 0) * 2
                colour = f"C{MODELS.index(model)}"
                ax.plot([k], [measured], "x", color=colour, markersize=9)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
    ax.set(xscale="log", yscale="log", xlabel="clients (data holders)", ylabel="bytes per epoch (FedAvg: per round)",
           title="Traffic per epoch, full Fashion-MNIST (lines: traffic.py; x: measured runs; o: crossovers)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":  # python traffic.py [FIGURE [RESULTS_DIR ...]]
    import sys
    out = sys.argv[1] if len(sys.argv) > 1 else "results/bandwidth.png"
    figure(out, sys.argv[2:] or ["results", "results/scale"])
    print(f"wrote {out}")
