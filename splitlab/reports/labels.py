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
    lines = ["| gradient noise S | test acc | labels the server reads (direction attack, one known label a class) "
             "| the same, clusters named with every label (upper bound) | norm attack AUC |",
             "|---|---|---|---|---|"]
    for noise, run in runs.items():
        last = run["epochs"][-1]
        known = last.get("label_direction_acc_one_known")
        lines.append(f"| {noise:g} | {last['test_acc']:.2%} | {'-' if known is None else f'{known:.1%}'} | "
                     f"{last['label_direction_acc']:.1%} | {last['label_norm_auc']:.3f} |")
    lines.append("\nU-shaped split learning; the last epoch; the attacks on every gradient the server was sent in "
                 "that epoch (label_leakage.py). A real attacker names the clusters by the few labels it knows (here "
                 "one example of each class, drawn at random; scored on the others); named with every true label "
                 "the score is an upper bound no attacker reaches. \"-\": a run made before the first was recorded. "
                 "Chance: about 10 % and 0.5.")
    return "\n".join(lines) + "\n"


def labels_figure(runs):
    """The server's label accuracy and the test accuracy over training, a line per noise setting."""
    fig, (leak, acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for noise, run in runs.items():
        epochs = [e["epoch"] for e in run["epochs"]]
        line, = leak.plot(epochs, [e.get("label_direction_acc_one_known", float("nan")) for e in run["epochs"]],
                          marker="o", label=f"noise {noise:g}")
        leak.plot(epochs, [e["label_direction_acc"] for e in run["epochs"]], linestyle="--", color=line.get_color())
        acc.plot(epochs, [e["test_acc"] for e in run["epochs"]], marker="o", label=f"noise {noise:g}")
    leak.axhline(0.1, color="grey", linestyle=":", label="chance")
    leak.plot([], [], linestyle="--", color="grey", label="upper bound: clusters named with every label")
    leak.set(xlabel="epoch", ylabel="labels the server reads (one known label a class)",
             title="U-shaped split learning: what the server reads of the labels")
    acc.set(xlabel="epoch", ylabel="test accuracy", title="what the defence costs")
    for ax in (leak, acc):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
