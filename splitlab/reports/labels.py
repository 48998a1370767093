"""The label attacks on U-shaped split learning under label-gradient noise (make labels): table and figure."""


import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator, PercentFormatter

from splitlab.runs import finished_runs


def load_labels(labels_dir):
    """U-shaped runs of ``make labels``, by their label-gradient noise: noise -> run."""
    runs = {run["config"].get("grad_noise_std", 0.0): run for _, run in finished_runs(labels_dir)
            if "label_direction_acc" in run["epochs"][-1]}
    return dict(sorted(runs.items()))


def labels_markdown(runs):
    lines = ["| gradient noise S | test acc | server's label accuracy (direction) | norm attack AUC |",
             "|---|---|---|---|"]
    for noise, run in runs.items():
        last = run["epochs"][-1]
        lines.append(f"| {noise:g} | {last['test_acc']:.2%} | {last['label_direction_acc']:.1%} | "
                     f"{last['label_norm_auc']:.3f} |")
    lines.append("\nU-shaped split learning; the last epoch; the attacks on every gradient the server was sent in "
                 "that epoch (label_leakage.py). Chance: about 10 % and 0.5.")
    return "\n".join(lines) + "\n"


def labels_figure(runs):
    """The server's label accuracy and the test accuracy over training, a line per noise setting."""
    fig, (leak, acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for noise, run in runs.items():
        epochs = [e["epoch"] for e in run["epochs"]]
        leak.plot(epochs, [e["label_direction_acc"] for e in run["epochs"]], marker="o", label=f"noise {noise:g}")
        acc.plot(epochs, [e["test_acc"] for e in run["epochs"]], marker="o", label=f"noise {noise:g}")
    leak.axhline(0.1, color="grey", linestyle=":", label="chance")
    leak.set(xlabel="epoch", ylabel="labels the server infers (direction attack)",
             title="U-shaped split learning: what the server reads of the labels")
    acc.set(xlabel="epoch", ylabel="test accuracy", title="what the defence costs")
    for ax in (leak, acc):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
