"""Regenerate the report's Figure 1, the comparison figure and the summary table from the results files.

    python plot_results.py                     # reads results/*.json, writes results/figure1.png,
                                               # results/comparison.png and results/summary.md
    python plot_results.py --results-dir DIR --out DIR/figure1.png

Reads whatever results exist: a missing method is named and left out, a corrupt file is reported by name.
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

METHODS = {"split": "Split learning", "federated": "Federated learning", "regular": "Regular learning",
           "sync_sgd": "Sync SGD, backup workers"}
FIGURE1_METHODS = ["split", "federated", "regular"]  # the report's rows, in its order
# The report's numbers (test accuracy, epochs to converge, seconds per epoch on a 4-core CPU).
REPORT = {"split": (0.880, 10, 26.2), "federated": (0.880, 25, 51.5), "regular": (0.888, 10, 19.0),
          "sync_sgd": (None, None, None)}


def load_results(results_dir):
    """``(runs, problems)``: method -> results dict for each readable file, and one line per missing or bad one."""
    runs, problems = {}, []
    for method in METHODS:
        path = Path(results_dir) / f"{method}.json"
        if not path.exists():
            problems.append(f"missing: {path} (run the {METHODS[method].lower()} script to make it)")
            continue
        try:
            run = json.loads(path.read_text())
            if not run["epochs"]:
                raise ValueError("no completed epoch")
            [(e["epoch"], e["test_loss"], e["test_acc"]) for e in run["epochs"]]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"corrupt: {path} ({type(exc).__name__}: {exc}); left out")
            continue
        runs[method] = run
    return runs, problems


def summarize(run):
    """The summary table's numbers for one run."""
    epochs = run["epochs"]
    best_acc = max(epochs, key=lambda e: e["test_acc"])
    best_loss = min(epochs, key=lambda e: e["test_loss"])
    return {"best_acc": best_acc["test_acc"], "best_acc_epoch": best_acc["epoch"],
            "min_loss": best_loss["test_loss"], "converged_epoch": best_loss["epoch"],
            "epochs_run": len(epochs),
            "mean_epoch_s": sum(e["epoch_time_s"] for e in epochs) / len(epochs),
            "total_bytes": sum(_traffic(e) for e in epochs)}


def _traffic(epoch):
    """Bytes sent in an epoch; for FedAvg simulated in one process, the model traffic a deployment would have."""
    return epoch["bytes_sent"] or epoch.get("model_bytes_down", 0) + epoch.get("model_bytes_up", 0)


def summary_markdown(runs):
    lines = ["| method | best test acc | at epoch | min test loss | epochs to converge (min loss) | epochs run "
             "| mean s / epoch | total bytes communicated | report: acc / epochs / s per epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, run in runs.items():
        s = summarize(run)
        acc, epochs, seconds = REPORT[method]
        report = f"{acc:.1%} / {epochs} / {seconds} s" if acc else "not finished in the report"
        lines.append(f"| {METHODS[method]} | {s['best_acc']:.2%} | {s['best_acc_epoch']} | {s['min_loss']:.4f} | "
                     f"{s['converged_epoch']} | {s['epochs_run']} | {s['mean_epoch_s']:.1f} | "
                     f"{s['total_bytes']:,} | {report} |")
    machine = next(iter(runs.values()))["environment"] if runs else {}
    lines.append(f"\nMeasured on {machine.get('cpus', '?')} CPUs ({machine.get('device', '?')}), "
                 f"torch {machine.get('torch', '?')}; seconds per epoch include evaluation. Bytes: all ranks' "
                 "sends; for FedAvg in one process, the model traffic (down and up) it stands for.")
    return "\n".join(lines) + "\n"


def _mark(ax, xs, ys, best, fmt):
    i = ys.index(best(ys))
    ax.plot(xs[i], ys[i], "o", color="red")
    below = best is max  # keep the label inside the panel
    ax.annotate(fmt(xs[i], ys[i]), (xs[i], ys[i]), textcoords="offset points", xytext=(0, -14 if below else 8),
                ha="right" if i > len(xs) / 2 else "left")


def figure1(runs):
    """The report's Figure 1: a row per method, test loss and test accuracy per epoch, best points marked."""
    fig, axes = plt.subplots(3, 2, figsize=(10, 10), squeeze=False)
    for row, method in enumerate(FIGURE1_METHODS):
        loss_ax, acc_ax = axes[row]
        loss_ax.set_ylabel(METHODS[method])
        if method not in runs:
            for ax in (loss_ax, acc_ax):
                ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
            continue
        xs = [e["epoch"] for e in runs[method]["epochs"]]
        losses = [e["test_loss"] for e in runs[method]["epochs"]]
        accs = [e["test_acc"] for e in runs[method]["epochs"]]
        loss_ax.plot(xs, losses)
        _mark(loss_ax, xs, losses, min, lambda x, y: f"min {y:.3f} (epoch {x})")
        acc_ax.plot(xs, accs, color="tab:green")
        _mark(acc_ax, xs, accs, max, lambda x, y: f"max {y:.1%} (epoch {x})")
    axes[0][0].set_title("test loss")
    axes[0][1].set_title("test accuracy")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig


def comparison(runs):
    """All methods on shared axes: accuracy per epoch and per second, and bytes communicated."""
    fig, (by_epoch, by_time, traffic) = plt.subplots(1, 3, figsize=(15, 4.5))
    for method, run in runs.items():
        epochs = run["epochs"]
        accs = [e["test_acc"] for e in epochs]
        by_epoch.plot([e["epoch"] for e in epochs], accs, marker=".", label=METHODS[method])
        by_time.plot([e["elapsed_s"] for e in epochs], accs, marker=".", label=METHODS[method])
    by_epoch.set(xlabel="epoch", ylabel="test accuracy", title="accuracy per epoch")
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set(xlabel="wall-clock seconds", ylabel="test accuracy", title="accuracy against time")
    names = [METHODS[m] for m in runs]
    traffic.bar(names, [summarize(run)["total_bytes"] / 1e9 for run in runs.values()])
    traffic.set(ylabel="GB sent, all ranks", title="bytes communicated")
    traffic.tick_params(axis="x", labelrotation=20)
    by_epoch.legend()
    fig.tight_layout()
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--results-dir", default="results", help="where the <method>.json results files are")
    parser.add_argument("--out", default=None, help="Figure 1's file (default: <results-dir>/figure1.png); "
                                                    "comparison.png and summary.md go beside it")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(args.results_dir) / "figure1.png"
    runs, problems = load_results(args.results_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not runs:
        print(f"error: no readable results in {args.results_dir}; run the training scripts first",
              file=sys.stderr)
        sys.exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure1(runs).savefig(out, dpi=120)
    comparison(runs).savefig(out.parent / "comparison.png", dpi=120)
    (out.parent / "summary.md").write_text(summary_markdown(runs))
    print(f"wrote {out}, {out.parent / 'comparison.png'}, {out.parent / 'summary.md'}")


if __name__ == "__main__":
    main()
