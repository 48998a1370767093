"""The non-IID study (study.py): accuracy by method and partition over seeds, its table and figure."""

import statistics

import matplotlib.pyplot as plt
from matplotlib.ticker import PercentFormatter

from splitlab.runs import GRID_CLIENTS, chosen_epoch, finished_runs, parse_run_name
from splitlab.runs import label as method_label


def load_study(study_dir):
    """method -> partition ("iid" or alpha as text) -> list of finished runs (one per seed), of the report's 10
    clients."""
    study = {}
    for path, run in finished_runs(study_dir):
        name = parse_run_name(path.stem)
        if name and name["clients"] == GRID_CLIENTS:
            study.setdefault(name["method"], {}).setdefault(name["partition"], []).append(run)
    return study


def _partition_order(partition):
    return float("inf") if partition == "iid" else float(partition)  # IID last: the least skewed


def study_rows(study):
    """``(method, partition, mean, std, n)`` of the best test accuracy over seeds."""
    rows = []
    for method, by_partition in study.items():
        for partition in sorted(by_partition, key=_partition_order):
            best = [chosen_epoch(run["epochs"])["test_acc"] for run in by_partition[partition]]
            rows.append((method, partition, statistics.mean(best), statistics.stdev(best) if len(best) > 1 else 0.0,
                         len(best)))
    return rows


def study_markdown(study):
    partitions = sorted({p for by_partition in study.values() for p in by_partition}, key=_partition_order)
    header = [f"alpha {p}" if p != "iid" else "IID" for p in partitions]
    lines = ["| method | " + " | ".join(header) + " |", "|---|" + "---|" * len(partitions)]
    cells = {(m, p): (mean, std, n) for m, p, mean, std, n in study_rows(study)}
    for method in study:
        row = [f"{cells[method, p][0]:.1%} ± {cells[method, p][1]:.1%} (n={cells[method, p][2]})"
               if (method, p) in cells else "" for p in partitions]
        lines.append(f"| {method_label(method)} | " + " | ".join(row) + " |")
    epochs = {len(run["epochs"]) for by_p in study.values() for runs in by_p.values() for run in runs}
    lines.append(f"\nBest test accuracy over {', '.join(map(str, sorted(epochs)))} epochs, mean ± standard "
                 "deviation over seeds (n runs); Dirichlet alpha: smaller is more skewed.")
    return "\n".join(lines) + "\n"


def noniid_figure(study):
    """Best test accuracy against the partition, per method (error bars: spread over seeds); and per class
    at the most skewed partition."""
    fig, (by_alpha, by_class) = plt.subplots(1, 2, figsize=(14, 5))
    partitions = sorted({p for by_p in study.values() for p in by_p}, key=_partition_order)
    position = {p: i for i, p in enumerate(partitions)}
    rows = study_rows(study)
    for k, method in enumerate(study):
        mine = [r for r in rows if r[0] == method]
        offset = (k - len(study) / 2) * 0.05
        by_alpha.errorbar([position[r[1]] + offset for r in mine], [r[2] for r in mine], yerr=[r[3] for r in mine],
                          marker="o", capsize=3, label=method_label(method))
    by_alpha.set_xticks(range(len(partitions)), [p if p == "iid" else f"α={p}" for p in partitions])
    by_alpha.set(xlabel="partition (more skewed to the left)", ylabel="best test accuracy",
                 title="accuracy against data skew (mean ± std over seeds)")
    by_alpha.yaxis.set_major_formatter(PercentFormatter(1.0))
    by_alpha.legend(fontsize=8)
    skewed = partitions[0]
    width = 0.8 / max(1, len(study))
    for k, method in enumerate(study):
        runs = study[method].get(skewed) or study[method].get("iid", [])
        per_class = []
        for c in range(10):
            values = [chosen_epoch(run["epochs"]).get("test_class_acc", [None] * 10)[c]
                      for run in runs]
            values = [v for v in values if v is not None]
            per_class.append(statistics.mean(values) if values else 0.0)
        by_class.bar([c + k * width for c in range(10)], per_class, width,
                     label=method_label(method) + (" (IID)" if skewed not in study[method] else ""))
    by_class.set_xticks([c + 0.4 - width / 2 for c in range(10)], [str(c) for c in range(10)])
    by_class.set(xlabel="class", ylabel="test accuracy of the class",
                 title=f"per class at {'α=' + skewed if skewed != 'iid' else 'IID'} (best epoch, mean over seeds)")
    by_class.yaxis.set_major_formatter(PercentFormatter(1.0))
    by_class.legend(fontsize=7)
    fig.tight_layout()
    return fig
