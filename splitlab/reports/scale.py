"""Many clients (make scale): accuracy and traffic against the number of clients, table and figure."""

import statistics

import matplotlib.pyplot as plt
from matplotlib.ticker import PercentFormatter

from splitlab.runs import chosen_epoch, epoch_bytes, finished_runs, parse_run_name
from splitlab.runs import label as method_label


def load_scale(scale_dir):
    """(method, partition) -> {K: finished run}, from the runs of ``make scale`` (study.py with --clients)."""
    scale = {}
    for path, run in finished_runs(scale_dir):
        name = parse_run_name(path.stem)
        if name:
            clients = len(run.get("shard_sizes") or []) or run["config"].get("clients")
            scale.setdefault((name["method"], name["partition"]), {})[clients] = run
    return scale


def collapsed(run):
    """True when a run's last epoch is at chance level: it lost what it had learnt, so its best accuracy is no
    result to plot as one."""
    return bool(run["epochs"][-1].get("at_chance"))


def scale_rows(scale):
    """``(method, partition, K, best accuracy, bytes an epoch, seconds an epoch, collapsed)``."""
    return [(method, partition, k, chosen_epoch(run["epochs"])["test_acc"], epoch_bytes(run["epochs"][-1]),
             statistics.mean(e["epoch_time_s"] for e in run["epochs"]), collapsed(run))
            for (method, partition), runs in scale.items() for k, run in sorted(runs.items())]


def scale_budget(scale):
    """The epochs (rounds) the runs of ``make scale`` had, as text."""
    return ", ".join(map(str, sorted({len(run["epochs"]) for runs in scale.values() for run in runs.values()})))


def scale_markdown(scale):
    lines = ["| method | partition | clients | best test accuracy | MB an epoch (round) | s an epoch |",
             "|---|---|---|---|---|---|"]
    for method, partition, k, acc, moved, seconds, fell in scale_rows(scale):
        lines.append(f"| {method_label(method)} | {'IID' if partition == 'iid' else 'α=' + partition} "
                     f"| {k:,} | {acc:.1%}{' (then at chance)' if fell else ''} | {moved / 1e6:,.1f} | {seconds:.1f} |")
    lines.append(f"\nBest test accuracy within {scale_budget(scale)} epochs (rounds); \"then at chance\": the run's "
                 "last epoch was at chance level, so it kept nothing of that best. Traffic of the last epoch, summed "
                 "over every rank; time on the machine that ran them.")
    return "\n".join(lines) + "\n"


def scale_figure(scale):
    """Best test accuracy and bytes an epoch against the number of clients, a line per method and partition; a
    run that ended at chance level is a cross off the line."""
    fig, (by_acc, by_bytes) = plt.subplots(1, 2, figsize=(13, 5))
    rows = scale_rows(scale)
    methods = sorted({m for m, _ in scale})
    for method, partition in scale:
        mine = [r for r in rows if r[:2] == (method, partition)]
        kept = [r for r in mine if not r[6]]
        style = dict(color=f"C{methods.index(method)}", linestyle="-" if partition == "iid" else "--",
                     label=f"{method_label(method)}, {'IID' if partition == 'iid' else 'α=' + partition}")
        by_acc.plot([r[2] for r in kept], [r[3] for r in kept], marker="o", **style)
        by_acc.plot([r[2] for r in mine if r[6]], [r[3] for r in mine if r[6]], marker="x", markersize=10,
                    linestyle="none", color=style["color"])
        by_bytes.plot([r[2] for r in mine], [r[4] for r in mine], marker="o", **style)
    if any(r[6] for r in rows):
        by_acc.plot([], [], "x", color="black", markersize=10, label="ended at chance: its best not kept")
    by_acc.set(xscale="log", xlabel="clients (data holders)", ylabel="best test accuracy",
               title=f"accuracy as the shards shrink (best within {scale_budget(scale)} epochs)")
    by_acc.yaxis.set_major_formatter(PercentFormatter(1.0))
    by_bytes.set(xscale="log", yscale="log", xlabel="clients (data holders)", ylabel="bytes an epoch (FedAvg: round)",
                 title="traffic (closed forms: results/bandwidth.png)")
    for ax in (by_acc, by_bytes):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
