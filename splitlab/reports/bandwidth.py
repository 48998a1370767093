"""Every method's bytes an epoch in closed form against the number of clients, with the measured runs."""

from pathlib import Path

import matplotlib.pyplot as plt

from splitlab.runs import epoch_bytes, read_run


def bandwidth_figure(results_dirs, n=60000, t=10000):
    """Bytes per epoch against the number of clients for every model: FedAvg's line, vanilla split learning's
    at each cut, the crossovers marked, and the measured epochs of the results files in ``results_dirs`` (full
    data only) as points: the last epoch, which carries no set-up."""
    import numpy as np  # here: only this figure needs the networks' sizes, and so torch

    from models import MODELS, build, cut_points, cut_shape, split
    from splitlab.costs.traffic import FLOAT, crossover, fedavg_round_bytes, split_epoch_bytes

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
            run = read_run(path_)
            model = run["config"].get("model", "lenet5")
            k = len(run["shard_sizes"]) if run.get("shard_sizes") else run["config"].get("clients")
            if run["method"] in ("split", "federated") and k and run["config"].get("train_subset") is None:
                measured = epoch_bytes(run["epochs"][-1])
                colour = f"C{MODELS.index(model)}"
                ax.plot([k], [measured], "x", color=colour, markersize=9)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
    ax.set(xscale="log", yscale="log", xlabel="clients (data holders)",
           ylabel="bytes per epoch (FedAvg: per round)",
           title="Traffic per epoch, full Fashion-MNIST (lines: splitlab/costs/traffic.py; x: measured runs; "
                 "o: crossovers)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig
