"""The decision map's tables and figure (decision.py draws them): the fastest method in every cell, from the
model of splitlab/costs/decision.py."""

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from splitlab.costs.decision import BANDWIDTHS, CLIENTS, at_best, by_setting, decide, epochs_over_seeds
from splitlab.runs import label

COLOURS = {"split": "C0", "split-cut2": "C9", "sflv2": "C2", "federated": "C1"}


def markdown(model, runs, compute, target, latency, bandwidths=(1e6, 1e7, 1e8, 1e9, 1e10)):
    """A table for the measured numbers of clients: each method's epochs to the target (the median over seeds,
    their range where seeds differ; for each of its settings, where it was run with several), and at each
    bandwidth the fastest method at its best setting with its time to the target and the runner-up's; a tie
    (costs/decision.py, decide) names both. Where a method has several settings, a letter names the one a cell
    chose (the notes under the table say which is which)."""
    clients, bandwidths = np.array(sorted({k for by_k in runs.values() for k in by_k})), np.array(bandwidths)
    winner, _ = decide(runs, compute, model, target, latency, clients, bandwidths)
    best = {name: at_best(by_k, compute, model, target, latency, clients, bandwidths) for name, by_k in runs.items()}
    tags = {name: _tags(by_k) for name, by_k in runs.items()}
    lines = [f"| {model}: clients | epochs to {target:.0%} | "
             + " | ".join(f"{b / 1e6:,.0f} Mbit/s" for b in bandwidths) + " |",
             "|---" * (2 + len(bandwidths)) + "|"]
    for i, k in enumerate(clients):
        epochs = []
        for name, by_k in runs.items():
            for words, seeds in by_setting(by_k).items():
                if k in seeds:
                    counts, (median_in, all_in) = epochs_over_seeds(seeds[k], target)
                    epochs.append(f"{label(name)}{tags[name][words]} {'' if median_in else '> '}"
                                  f"{_spread(*counts, _epochs, all_in)}")
        cells = []
        for j in range(len(bandwidths)):
            def timed(name, bold=False):
                seconds, reached, chosen = best[name]
                named = f"{label(name)}{tags[name][chosen[i, j]]}"
                return (f"**{named}**" if bold else named) + \
                    f" {_spread(*seconds[i, j], _duration, reached[i, j, 1])}"
            ranked = sorted((seconds[i, j, 1], n) for n, (seconds, reached, _) in best.items() if reached[i, j, 0])
            if isinstance(winner[i, j], tuple):
                cells.append("tie: " + " / ".join(timed(name) for name in winner[i, j]))
            elif not winner[i, j]:
                cells.append("undecided")
            else:
                cells.append(timed(winner[i, j], bold=True) + (f" ({timed(ranked[1][1])})" if len(ranked) > 1 else ""))
        lines.append(f"| {k:,} | {', '.join(epochs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\nSettings: {settings(runs)}. A number ending in +: a seed that had not "
                                "reached the target when its run ended, so at least that; > before the median: "
                                "most seeds had not.\n")


def _tags(by_k):
    """{setting: its letter in the tables, " [a]", " [b]", ...; "" where the method has one setting}."""
    words = list(by_setting(by_k))
    return {w: f" [{chr(ord('a') + n)}]" if len(words) > 1 else "" for n, w in enumerate(words)}


def settings(runs):
    """Each method's settings in ``runs`` (method -> {clients: [runs]}), as the map's notes state them:
    ``FedAvg: batch 64, lr 0.01, 1 local epoch(s), 100% of the clients a round; ...``, each of several settings
    after its letter (``[a] batch 10, ...``), and how often split learning was evaluated within an epoch."""
    described = []
    for name, by_k in runs.items():
        tags, kinds = _tags(by_k), []
        for words, seeds in by_setting(by_k).items():
            evaluations = next(iter(seeds.values()))[0]["config"].get("evals_per_epoch", 1)
            kinds.append(f"{tags[words].strip()} {words}".strip()
                         + (f", evaluated {evaluations} times an epoch" if evaluations > 1 else ""))
        described.append(f"{label(name)}: {' '.join(kinds)}")
    return "; ".join(described)


def _spread(fastest, median, slowest, show, slowest_reached=True):
    """The median, and the range over seeds where it is not one value: ``5 s [4 s-7 s]``; a slowest seed short of
    the target is at least its number: ``5 s [4 s-7 s+]``."""
    plus = "" if slowest_reached else "+"
    return show(median) + (f" [{show(fastest)}-{show(slowest)}{plus}]" if fastest != slowest else "")


def _epochs(count):
    return f"{round(count, 2):g}"


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.0f} h"


def shards(partition):
    """How the data were divided, in words: ``IID shards`` or ``Dirichlet 0.5 shards``."""
    return "IID shards" if partition == "iid" else f"Dirichlet {partition} shards"


def figure(maps, target, latency, machine, path, partition="iid"):
    """One panel a model: the winner's colour in every cell (a tie hatched over the colour of the least median),
    the measured numbers of clients marked; ``machine`` is where the roles' batches were timed
    (costs/decision.py, this_machine)."""
    notes = {model: textwrap.fill(settings(runs), 95) for model, (_, runs, _) in maps.items()}
    notes_height = max(note.count("\n") + 1 for note in notes.values()) * 6.5 * 1.3 / 72  # inches, at 6.5 pt
    height = 5.0 + notes_height
    fig, axes = plt.subplots(1, len(maps), figsize=(6.5 * len(maps), height), squeeze=False)
    names = sorted({name for winner, _, _ in maps.values() for cell in winner.flat
                    for name in (cell if isinstance(cell, tuple) else (cell,)) if name})
    seeds = sorted({run["config"].get("seed", 0) for _, runs, _ in maps.values() for by_k in runs.values()
                    for seeded in by_k.values() for run in seeded})
    seeds = f"the median of seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    ties = False
    for ax, (model, (winner, runs, compute)) in zip(axes[0], maps.items()):
        tied = np.array([isinstance(cell, tuple) for cell in winner.flat]).reshape(winner.shape)
        first = np.array([cell[0] if isinstance(cell, tuple) else cell for cell in winner.flat],
                         dtype=object).reshape(winner.shape)  # a tie's colour: the least median's
        rgb = np.ones((*winner.shape, 3))
        for name in names:
            rgb[first == name] = to_rgb(COLOURS.get(name, "C7"))
        rgb[first == ""] = (0.85, 0.85, 0.85)
        ax.pcolormesh(BANDWIDTHS, CLIENTS, rgb, shading="nearest")
        if tied.any():
            ties = True
            ax.contourf(BANDWIDTHS, CLIENTS, tied.astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"])
        for k in sorted({k for by_k in runs.values() for k in by_k}):
            ax.axhline(k, color="black", linewidth=0.6, linestyle=":")
            ax.annotate(f"measured, {k:,} clients", (BANDWIDTHS[0], k), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set(xscale="log", yscale="log", xlabel="link bandwidth (bit/s)", ylabel="clients (data holders)",
               title=f"{model}: first to {target:.0%} accuracy")
        note = ax.annotate(notes[model], (0.5, 0), xycoords="axes fraction", xytext=(0, -34),
                           textcoords="offset points", fontsize=6.5, ha="center", va="top")
        note.set_in_layout(False)  # below the axis label, in the space kept for it (not squeezing the panel)
    handles = [Patch(color=COLOURS.get(n, "C7"), label=label(n)) for n in names]
    handles.append(Patch(color=(0.85, 0.85, 0.85), label="undecided (a method that did not reach it might win)"))
    if ties:
        handles.append(Patch(facecolor="white", hatch="////", label="tie: the winner's slowest seed not faster than "
                             "the runner-up's fastest (both in decision.md)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    title = (f"Fastest to the target: measured epochs x modelled epoch time (splitlab/costs/decision.py). "
             f"Assumed: the server and every data holder on a machine of its own, each computing as one core of "
             f"{machine['processor']} ({machine['cpus']}-CPU host {machine['host']}, timed {machine['date']}), "
             f"with a link of its own at the bandwidth shown and {latency * 1e3:g} ms latency; epochs on "
             f"{shards(partition)}, {seeds}; each method's settings below its panel")
    fig.suptitle(textwrap.fill(title, 85 * len(maps)), fontsize=9)  # about 85 characters fit a panel's width
    fig.tight_layout(rect=(0, (notes_height + 0.5) / height, 1, 0.93))
    fig.savefig(path, dpi=120)
    plt.close(fig)
