"""The report's experiment: every method's results file, Figure 1, the comparison figure and the summary table."""

import json
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator, PercentFormatter

from splitlab.runs import METHODS, chosen_epoch, epoch_bytes, watched_loss
from splitlab.runs import label as method_label
from splitlab.training.results_guard import FINISHED

# the results files of the report's experiment and of `make variants` (run names) -> their method; the report's
# three methods first, then sync SGD and the split variants
RESULT_FILES = {"split": "split", "federated": "federated", "regular": "regular", "sync_sgd": "sync_sgd",
                "split-sflv1": "sflv1", "split-sflv2": "sflv2", "split-u-shaped": "u-shaped"}
OPTIONAL = {"split-sflv1", "split-sflv2", "split-u-shaped"}  # `make variants`; not named when missing
FIGURE1_METHODS = ["split", "federated", "regular"]  # the report's rows, in its order
# The report (X. Ioannidou and B. T. Straathof, "An Investigation Into Split Learning", KTH, 2020): test
# accuracy, epochs to converge, seconds per epoch on a 4-core CPU.
REPORT = {"split": (0.880, 10, 26.2), "federated": (0.880, 25, 51.5), "regular": (0.888, 10, 19.0)}
# Flags that say where and how a run was written, not what was computed.
NOT_SETTINGS = {"run_name", "results_dir", "data_dir", "no_progress", "device", "world_size", "clients",
                "leakage_images", "client_eval"}


def differences(run, expected_variant=None):
    """The flags of ``run`` that differ from the report's experiment (the defaults its script recorded), as
    ``--flag value`` strings."""
    config, defaults = run.get("config", {}), dict(run.get("defaults") or {})
    if not defaults:
        return ["settings unknown (a results file without its defaults)"]
    if expected_variant:
        defaults["variant"] = expected_variant
    changed = [f"--{key.replace('_', '-')} {value}" for key, value in config.items()
               if key in defaults and key not in NOT_SETTINGS and value != defaults[key]]
    if run.get("status") not in FINISHED:
        changed.append(f"status {run.get('status')}")
    return changed


def label(name, run):
    """The method's label, with the backup workers of sync SGD, and * when its settings differ."""
    text = method_label(RESULT_FILES[name])
    if name == "sync_sgd":
        backups = run.get("config", {}).get("backup_workers", 0)
        text += f", {backups} backup worker{'s' if backups != 1 else ''}"
    return text + (" *" if differences(run, _variant(name)) else "")


def _variant(name):
    return name.split("-", 1)[1] if name.startswith("split-") else None


def load_results(results_dir):
    """``(runs, problems)``: name -> results dict for each readable file, and one line per missing or bad one."""
    runs, problems = {}, []
    for name, method in RESULT_FILES.items():
        path = Path(results_dir) / f"{name}.json"
        if not path.exists():
            if name not in OPTIONAL:
                problems.append(f"missing: {path} (run {METHODS[method].script} to make it)")
            continue
        try:
            run = json.loads(path.read_text())
            if not run["epochs"]:
                raise ValueError("no completed epoch")
            [(e["epoch"], e["test_loss"], e["test_acc"]) for e in run["epochs"]]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"corrupt: {path} ({type(exc).__name__}: {exc}); left out")
            continue
        runs[name] = run
    return runs, problems


def summarize(run):
    """The summary table's numbers for one run."""
    epochs = run["epochs"]
    best_acc, best_loss = chosen_epoch(epochs), min(epochs, key=watched_loss)
    return {"best_acc": best_acc["test_acc"], "best_acc_epoch": best_acc["epoch"],
            "min_loss": best_loss["test_loss"], "converged_epoch": best_loss["epoch"],
            "epochs_run": len(epochs),
            "mean_epoch_s": sum(e["epoch_time_s"] for e in epochs) / len(epochs),
            "total_bytes": sum(epoch_bytes(e) for e in epochs)}


def summary_markdown(runs):
    lines = ["| method | best test acc | at epoch | min test loss | epochs to converge (min loss) | epochs run "
             "| mean s / epoch | total bytes communicated | the report: acc / epochs / s per epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, run in runs.items():
        s = summarize(run)
        acc, epochs, seconds = REPORT.get(name, (None, None, None))
        report = f"{acc:.1%} / {epochs} / {seconds} s" if acc else "not in the report"
        lines.append(f"| {label(name, run)} | {s['best_acc']:.2%} | {s['best_acc_epoch']} | {s['min_loss']:.4f} | "
                     f"{s['converged_epoch']} | {s['epochs_run']} | {s['mean_epoch_s']:.1f} | "
                     f"{s['total_bytes']:,} | {report} |")
        changed = differences(run, _variant(name))
        if changed:
            notes.append(f"\\* {method_label(RESULT_FILES[name])}: not the report's experiment: {', '.join(changed)}.")
    machine = next(iter(runs.values()))["environment"] if runs else {}
    lines.append(f"\nMeasured on {machine.get('cpus', '?')} CPUs ({machine.get('device', '?')}), "
                 f"torch {machine.get('torch', '?')}; seconds per epoch include evaluation. Bytes: all ranks' "
                 "sends; for FedAvg in one process, the model traffic (down and up) it stands for.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def accuracy_by_epoch_markdown(runs, epochs=(*range(1, 11), 15)):
    """Test accuracy (%) after each of ``epochs`` in the report's experiment, one row a method."""
    lines = ["| epoch | " + " | ".join(map(str, epochs)) + " |", "|---|" + "---|" * len(epochs)]
    for name, run in runs.items():
        if name in OPTIONAL:
            continue
        acc = {e["epoch"]: e["test_acc"] for e in run["epochs"]}
        cells = [f"{acc[n]:.2%}".rstrip("%") if n in acc else "-" for n in epochs]
        lines.append(f"| {label(name, run)} | " + " | ".join(cells) + " |")
    lines.append("\n-: the run had ended (stopped early) before that epoch.")
    return "\n".join(lines) + "\n"


def variants_markdown(runs, epochs=(1, 5, 10)):
    """The split variants (make variants) beside vanilla split learning: test accuracy after ``epochs``, the best,
    the mean training pass, bytes an epoch and the last epoch's leakage (bias-corrected dCor^2)."""
    lines = ["| variant | " + " | ".join(f"epoch {n}" for n in epochs) + " | best (epoch) | s / epoch, training "
             "| MB / epoch | dCor^2 bias-corrected |", "|---|" + "---|" * (len(epochs) + 4)]
    for name in ("split-sflv1", "split-sflv2", "split-u-shaped", "split"):
        if name not in runs:
            continue
        run = runs[name]
        acc = {e["epoch"]: e["test_acc"] for e in run["epochs"]}
        best = chosen_epoch(run["epochs"])
        train_s = statistics.mean(e["train_time_s"] for e in run["epochs"])
        moved = statistics.mean(epoch_bytes(e) for e in run["epochs"])
        dcor = run["epochs"][-1].get("dcor2_bias_corrected")
        lines.append(f"| {label(name, run)} | " + " | ".join(f"{acc[n]:.2%}" if n in acc else "-" for n in epochs)
                     + f" | {best['test_acc']:.2%} ({best['epoch']}) | {train_s:.1f} | "
                     f"{moved / 1e6:,.1f} | {'-' if dcor is None else f'{dcor:.3f}'} |")
    lines.append("\nEvery epoch's training pass averaged (epochs that ran beside other work included); dCor^2 of the "
                 "last epoch, between the first test images and the activations the server received for them.")
    return "\n".join(lines) + "\n"


def _mark(ax, xs, ys, best, fmt):
    """Mark the best point, and say it in a corner of the panel (where no curve runs through the text)."""
    i = ys.index(best(ys))
    ax.plot(xs[i], ys[i], "o", color="red")
    ax.text(0.97, 0.5, fmt(xs[i], ys[i]), transform=ax.transAxes, ha="right", va="center",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9})


def figure1(runs):
    """The report's Figure 1: a row per method, test loss and test accuracy per epoch, best points marked."""
    fig, axes = plt.subplots(3, 2, figsize=(10, 10), squeeze=False)
    for row, name in enumerate(FIGURE1_METHODS):
        loss_ax, acc_ax = axes[row]
        if name not in runs:
            loss_ax.set_ylabel(method_label(RESULT_FILES[name]))
            for ax in (loss_ax, acc_ax):
                ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
            continue
        loss_ax.set_ylabel(label(name, runs[name]))
        xs = [e["epoch"] for e in runs[name]["epochs"]]
        losses = [e["test_loss"] for e in runs[name]["epochs"]]
        accs = [e["test_acc"] for e in runs[name]["epochs"]]
        loss_ax.plot(xs, losses)
        _mark(loss_ax, xs, losses, min, lambda x, y: f"min {y:.3f} (epoch {x})")
        acc_ax.plot(xs, accs, color="tab:green")
        acc_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
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
    """All methods on shared axes: accuracy per epoch, accuracy against training time, and bytes communicated."""
    fig, (by_epoch, by_time, traffic) = plt.subplots(1, 3, figsize=(16, 5.5))
    for name, run in runs.items():
        epochs = run["epochs"]
        accs = [e["test_acc"] for e in epochs]
        typical = statistics.median(e["epoch_time_s"] for e in epochs)  # epochs that ran beside other work left out
        by_epoch.plot([e["epoch"] for e in epochs], accs, marker=".", label=label(name, run))
        by_time.plot([e["epoch"] * typical for e in epochs], accs, marker=".", label=label(name, run))
    by_epoch.set(xlabel="epoch", ylabel="test accuracy", title="accuracy per epoch")
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    cpus = {run.get("environment", {}).get("cpus") for run in runs.values()}
    machine = f"the {cpus.pop()}-CPU machine" if len(cpus) == 1 and None not in cpus else "the machines"
    by_time.set(xlabel="seconds: epochs x the run's median epoch time", ylabel="test accuracy",
                title=f"accuracy against time, on {machine} that ran them")
    for ax in (by_epoch, by_time):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    sent = {label(name, run): summarize(run)["total_bytes"] / 1e9 for name, run in runs.items()}
    silent = [name for name, gigabytes in sent.items() if not gigabytes]  # nothing crossed a process boundary
    sent = {name: gigabytes for name, gigabytes in sent.items() if gigabytes}
    bars = traffic.bar(list(sent), list(sent.values()))
    traffic.bar_label(bars, labels=[f"{g:.3g} GB" for g in sent.values()], fontsize=8)
    traffic.set_yscale("log")
    traffic.set(ylabel="GB sent, all ranks (log scale)", title="bytes communicated, whole run"
                + (f"\n({', '.join(silent)}: none)" if silent else ""))
    traffic.tick_params(axis="x", labelrotation=30)
    for tick in traffic.get_xticklabels():
        tick.set_ha("right")
    by_epoch.legend(fontsize=8)
    if any(name.endswith(" *") for name in map(lambda item: label(*item), runs.items())):
        fig.text(0.01, 0.01, "* not the report's experiment: its settings differ (results/summary.md names them)",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig
