"""What a data holder pays (make work): each role's FLOPs, CPU seconds, bytes and memory, table and figure."""

import statistics

import matplotlib.pyplot as plt

from splitlab.runs import finished_runs
from splitlab.runs import label as method_label


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
