"""Regenerate the report's Figure 1, the comparison figure, the non-IID study's figure and the summary table.

    python plot_results.py                     # reads results/*.json (and results/study/, privacy/, labels/, scale/,
                                               # work/ if there), writes figure1.png, comparison.png, noniid.png,
                                               # privacy.png, labels.png, scale.png, work.png, summary.md,
                                               # runs.csv
    python plot_results.py --results-dir DIR --out DIR/figure1.png

Reads whatever results exist: a missing method is named and left out, a corrupt file is reported by name. A run
whose settings differ from the report's experiment (a subset, a partition, a flag changed) is marked as such
in the figures (*) and in the table, with the flags that differ.
"""

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from splitlab.runs import GRID_CLIENTS, METHODS, finished_runs, parse_run_name  # noqa: E402
from splitlab.runs import label as method_label  # noqa: E402
from splitlab.training.results_guard import FINISHED  # noqa: E402

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


# ------------------------------------------------------------------------------------------ the study

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
            best = [max(e["test_acc"] for e in run["epochs"]) for run in by_partition[partition]]
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
            values = [max(run["epochs"], key=lambda e: e["test_acc"]).get("test_class_acc", [None] * 10)[c]
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


# ------------------------------------------------------------------------------------- label leakage

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


# ------------------------------------------------------------------------------------ many clients

def load_scale(scale_dir):
    """(method, partition) -> {K: finished run}, from the runs of ``make scale`` (study.py with --clients)."""
    scale = {}
    for path, run in finished_runs(scale_dir):
        name = parse_run_name(path.stem)
        if name:
            clients = len(run.get("shard_sizes") or []) or run["config"].get("clients")
            scale.setdefault((name["method"], name["partition"]), {})[clients] = run
    return scale


def epoch_bytes(run):
    """Bytes over the network in one epoch (round): the last epoch's, which carries no set-up."""
    last = run["epochs"][-1]
    return last.get("bytes_sent") or last.get("model_bytes_down", 0) + last.get("model_bytes_up", 0)


def collapsed(run):
    """True when a run's last epoch is at chance level: it lost what it had learnt, so its best accuracy is no
    result to plot as one."""
    return bool(run["epochs"][-1].get("at_chance"))


def scale_rows(scale):
    """``(method, partition, K, best accuracy, bytes an epoch, seconds an epoch, collapsed)``."""
    return [(method, partition, k, max(e["test_acc"] for e in run["epochs"]), epoch_bytes(run),
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


# ------------------------------------------------------------------------------- what a data holder pays

def load_work(work_dir):
    """Finished runs of ``make work`` (in <work_dir>/<model>/) whose epochs record the roles' work (work.py)."""
    return [run for _, run in finished_runs(work_dir, "*/*.json") if "client_flops" in run["epochs"][-1]]


def work_label(run):
    config = run["config"]
    method = config.get("variant", "split") if run["method"] == "split" else run["method"]
    method = {"vanilla": "split"}.get(method, method)
    cut = f", cut {config['cut_layer']}" if "cut_layer" in config else ""
    return f"{method_label(method)}{cut}"


def work_rows(runs):
    """Per run, from its last epoch (the first carries set-up): ``(model, label, data holder's mean GFLOP, CPU s,
    MB sent and received, peak MB of its process, server's GFLOP, CPU s)``; the means over the clients that
    trained in that epoch."""
    rows = []
    for run in runs:
        last = run["epochs"][-1]
        holders = [i for i, flops in enumerate(last["client_flops"]) if flops]
        mean = lambda key: statistics.mean(last[key][i] for i in holders)  # noqa: E731
        rows.append((run["config"]["model"], work_label(run), mean("client_flops") / 1e9, mean("client_cpu_s"),
                     (mean("client_bytes_sent") + mean("client_bytes_received")) / 1e6,
                     max(last["client_peak_rss_mb"][i] for i in holders),
                     last.get("server_flops", 0) / 1e9 if "server_flops" in last else None,
                     last.get("server_cpu_s")))
    return rows


def work_markdown(runs):
    lines = ["| model | method | a data holder: GFLOP an epoch | its CPU s | its MB sent + received | peak MB of its "
             "process | the server: GFLOP | its CPU s |", "|---|---|---|---|---|---|---|---|"]
    for model, name, flops, cpu, moved, peak, server_flops, server_cpu in work_rows(runs):
        server = f"{server_flops:,.2f} | {server_cpu:.1f}" if server_flops is not None else "- | -"
        lines.append(f"| {model} | {name} | {flops:,.2f} | {cpu:.1f} | {moved:,.1f} | {peak:,.0f} | {server} |")
    lines.append("\nThe last epoch (round) of each run; a data holder's numbers are the mean over the clients that "
                 "trained in it (regular learning: the one holder of all the data). FLOPs of forward and backward "
                 "passes (torch's FlopCounterMode: matrix products and convolutions); CPU seconds of the role's own "
                 "work, waits for messages left out; peak resident memory of the process the client ran in (work.py).")
    return "\n".join(lines) + "\n"


def work_figure(runs):
    """What a data holder pays per epoch, a bar per method (and model): FLOPs, CPU seconds and traffic."""
    rows = work_rows(runs)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    models = sorted({row[0] for row in rows})
    names = list(dict.fromkeys(row[1] for row in rows))
    width = 0.8 / len(models)
    for ax, column, title in zip(axes, (2, 3, 4), ("GFLOP an epoch (forward and backward)", "CPU seconds an epoch",
                                                    "MB sent and received an epoch")):
        for m, model in enumerate(models):
            values = {row[1]: row[column] for row in rows if row[0] == model}
            ax.bar([i + m * width for i in range(len(names))], [values.get(n, float("nan")) for n in names],
                   width, label=model)
        ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(names))], names, rotation=30,
                      ha="right")
        ax.set(yscale="log", title=f"a data holder: {title}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("What a data holder pays (make work; mean over the clients, last epoch)")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ privacy

def load_privacy(privacy_dir):
    """One row per attack (a defence setting at a cut of a model, attacked with some auxiliary data) that has both
    its training results and its attack results."""
    rows = []
    for attack_path in sorted(Path(privacy_dir).glob("*-attack.json")):
        name = re.fullmatch(r"(.+?)(?:-aux[0-9]+)?-attack\.json", attack_path.name)[1]
        try:
            run = json.loads((attack_path.parent / f"{name}.json").read_text())
            attack = json.loads(attack_path.read_text())
            last = run["epochs"][-1]
        except (OSError, ValueError, KeyError, IndexError):
            continue
        config = run["config"]
        rows.append({"setting": name, "model": config.get("model", "lenet5"), "cut": config.get("cut_layer", 1),
                     "clients": len(run.get("shard_sizes") or []) or config.get("world_size", 1) - 1,
                     "aux": attack.get("attack_settings", {}).get("aux", 5000),
                     "nopeek": config.get("nopeek", 0.0), "noise_std": config.get("noise_std", 0.0),
                     "test_acc": last["test_acc"], "dcor2": last.get("dcor2_bias_corrected"),
                     "dcor_batch": last.get("dcor_batch"), "epochs": len(run["epochs"]),
                     **{f"ssim_{k}": v["ssim"] for k, v in attack["attacks"].items()},
                     **{f"class_acc_{k}": v["classifier_accuracy"] for k, v in attack["attacks"].items()}})
    return rows


def first_private_setting(rows, ssim_below=0.3, points=0.02):
    """The report's question: the first row (by model, cut, then defence) whose decoder SSIM is under
    ``ssim_below`` while its accuracy is within ``points`` of the undefended run of the same model, cut, clients
    and epochs; None if there is none."""
    def group(r):
        return r["model"], r["cut"], r["clients"], r["epochs"]
    undefended = {group(r): r["test_acc"] for r in rows if not r["nopeek"] and not r["noise_std"]}
    candidates = [r for r in rows if group(r) in undefended and r.get("ssim_decoder", 1.0) < ssim_below
                  and r["test_acc"] >= undefended[group(r)] - points]
    return min(candidates, key=lambda r: (r["model"], r["cut"], r["nopeek"], r["noise_std"]), default=None)


def privacy_markdown(rows):
    lines = ["| model | cut | clients | epochs | setting | NoPeek W | noise S | test acc | dCor^2 bias-corrected "
             "| SSIM white-box | decoder's auxiliary images | SSIM decoder | classifier acc on decoder's images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["cut"], r["clients"], r["epochs"], r["nopeek"],
                                         r["noise_std"], r["aux"])):
        lines.append(f"| {r['model']} | {r['cut']} | {r['clients']} | {r['epochs']} | {r['setting']} | {r['nopeek']} "
                     f"| {r['noise_std']} | {r['test_acc']:.2%} | {r['dcor2']:.3f} | "
                     f"{r.get('ssim_white-box', float('nan')):.3f} | {r['aux']:,} | "
                     f"{r.get('ssim_decoder', float('nan')):.3f} | {r.get('class_acc_decoder', float('nan')):.1%} |")
    found = first_private_setting(rows)
    lines.append("\nVanilla split learning; test accuracy and leakage after the last epoch (the last client's part); "
                 "attacks on test images 0-99 (attack.py), the decoder trained on that many test images from 5,000 on. "
                 + (f"First setting with decoder SSIM under 0.3 within 2 points of its undefended run's accuracy: "
                    f"{found['setting']} ({found['test_acc']:.2%}, SSIM {found['ssim_decoder']:.3f})." if found else
                    "No setting here has decoder SSIM under 0.3 within 2 points of its undefended run's accuracy."))
    return "\n".join(lines) + "\n"


def defence(row):
    """The defence of a privacy row, as a legend names it."""
    if row["nopeek"]:
        return f"NoPeek W = {row['nopeek']:g}"
    if row["noise_std"]:
        return f"noise S = {row['noise_std']:g}"
    return "undefended"


def privacy_figure(rows):
    """A panel per grid (model, cut, clients, epochs): each defence's test accuracy against the SSIM of the
    decoder's reconstructions (filled) and of white-box inversion's (hollow), with the largest auxiliary set."""
    groups = sorted({(r["model"], r["cut"], r["clients"], r["epochs"]) for r in rows})
    order = sorted({(bool(r["noise_std"]), r["nopeek"], r["noise_std"]) for r in rows})
    names = [defence({"nopeek": w, "noise_std": s}) for _, w, s in order]
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    columns = min(3, len(groups))
    fig, axes = plt.subplots(-(-len(groups) // columns), columns, figsize=(5 * columns, 4 * -(-len(groups) // columns)),
                             squeeze=False)
    for ax, group in zip(axes.flat, groups):
        mine = [r for r in rows if (r["model"], r["cut"], r["clients"], r["epochs"]) == group]
        for setting in sorted({r["setting"] for r in mine}):
            row = max((r for r in mine if r["setting"] == setting), key=lambda r: r["aux"])
            colour = colours[defence(row)]
            ax.plot(row.get("ssim_decoder", float("nan")), row["test_acc"], "o", color=colour)
            ax.plot(row.get("ssim_white-box", float("nan")), row["test_acc"], "s", color=colour,
                    markerfacecolor="none")
        ax.axvline(0.3, color="grey", linestyle=":")
        model, cut, clients, epochs = group
        ax.set(title=f"{model}, cut {cut}: {clients} clients, {epochs} epochs", xlim=(0, 1),
               xlabel="SSIM of the reconstructions (100 test images)", ylabel="test accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    handles = [Line2D([], [], marker="o", linestyle="none", color=colours[name], label=name) for name in names]
    handles += [Line2D([], [], marker="o", linestyle="none", color="black", label="decoder (filled)"),
                Line2D([], [], marker="s", linestyle="none", color="black", markerfacecolor="none",
                       label="white-box inversion (hollow)"),
                Line2D([], [], color="grey", linestyle=":", label="SSIM 0.3: unrecognisable (He et al.)")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle("Split learning under each defence: what the server rebuilds, and what it costs in accuracy")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return fig


# results/runs.csv: one row per results file under the results folder (docs/findings.md, "Every run in one table")
RUN_COLUMNS = ["file", "method", "variant", "cut_layer", "clients", "partition", "alpha", "seed", "nopeek",
               "noise_std", "status", "best_test_acc", "best_epoch", "epochs", "mean_epoch_s", "bytes_per_epoch"]


def run_row(path, run):
    """The runs table's row of one results file."""
    config, epochs = run.get("config", {}), run["epochs"]
    best = max(epochs, key=lambda e: e["test_acc"])
    clients = len(run["shard_sizes"]) if run.get("shard_sizes") else \
        config.get("clients") if run["method"] == "federated" else \
        config["world_size"] - 1 if config.get("world_size", 1) > 1 else None
    return {"file": str(path), "method": run["method"], "variant": config.get("variant"),
            "cut_layer": config.get("cut_layer"), "clients": clients, "partition": config.get("partition"),
            "alpha": config.get("alpha") if config.get("partition") == "dirichlet" else None,
            "seed": config.get("seed"), "nopeek": config.get("nopeek"), "noise_std": config.get("noise_std"),
            "status": run.get("status"), "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
            "epochs": len(epochs), "mean_epoch_s": statistics.mean(e["epoch_time_s"] for e in epochs),
            "bytes_per_epoch": statistics.mean(_traffic(e) for e in epochs)}


def runs_table(results_dir):
    """Every readable results file under ``results_dir``, one row each (files that are not runs are skipped)."""
    rows = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            run = json.loads(path.read_text())
            rows.append(run_row(path.relative_to(results_dir), run))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # an attack's scores, a file cut off mid-write: not a run
    return rows


def write_runs_table(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, RUN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


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
           title="Traffic per epoch, full Fashion-MNIST (lines: splitlab/costs/traffic.py; x: measured runs; o: crossovers)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--results-dir", default="results", help="where the <method>.json results files are")
    parser.add_argument("--study", default=None, help="the study's results (default: <results-dir>/study, if any)")
    parser.add_argument("--scale", default=None, help="make scale's results (default: <results-dir>/scale, if any)")
    parser.add_argument("--bandwidth", action="store_true",
                        help="also draw bandwidth.png, every method's bytes an epoch in closed form against the "
                             "clients (it loads the networks, and so torch, for their sizes)")
    parser.add_argument("--out", default=None, help="Figure 1's file (default: <results-dir>/figure1.png); "
                                                    "the others go beside it")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(args.results_dir) / "figure1.png"
    runs, problems = load_results(args.results_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    study = load_study(args.study or Path(args.results_dir) / "study")
    privacy = load_privacy(Path(args.results_dir) / "privacy")
    scale = load_scale(args.scale or Path(args.results_dir) / "scale")
    labels = load_labels(Path(args.results_dir) / "labels")
    work = load_work(Path(args.results_dir) / "work")
    if not runs and not study and not privacy and not scale and not labels and not work:
        print(f"error: no readable results in {args.results_dir}; run the training scripts first",
              file=sys.stderr)
        sys.exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    written, summary = [], ""
    if runs:
        figure1(runs).savefig(out, dpi=120)
        comparison(runs).savefig(out.parent / "comparison.png", dpi=120)
        written += [out, out.parent / "comparison.png"]
        summary += summary_markdown(runs)
    reports = [(study, noniid_figure, "noniid.png", "Non-IID data, several seeds (study.py)", study_markdown),
               (privacy, privacy_figure, "privacy.png", "Leakage and defences (privacy.py)", privacy_markdown),
               (labels, labels_figure, "labels.png", "Labels in U-shaped split learning (make labels)", labels_markdown),
               (scale, scale_figure, "scale.png", "Many clients (make scale)", scale_markdown),
               (work, work_figure, "work.png", "What a data holder pays (make work)", work_markdown)]
    for found, figure, name, heading, table in reports:
        if found:
            figure(found).savefig(out.parent / name, dpi=120)
            written.append(out.parent / name)
            summary += f"\n## {heading}\n\n" + table(found)
    if args.bandwidth:
        bandwidth_figure([args.results_dir, args.scale or Path(args.results_dir) / "scale"]).savefig(
            out.parent / "bandwidth.png", dpi=120)
        written.append(out.parent / "bandwidth.png")
    (out.parent / "summary.md").write_text(summary)
    write_runs_table(runs_table(args.results_dir), out.parent / "runs.csv")
    print(f"wrote {', '.join(map(str, written))}, {out.parent / 'summary.md'}, {out.parent / 'runs.csv'}")


if __name__ == "__main__":
    main()
