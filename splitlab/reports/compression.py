"""Compressed messages (make compression, compression.py): each codec setting against its uncompressed run, seed by
seed; results/compression.json, its table and results/compression.png."""

import json
import statistics
from collections import defaultdict

import matplotlib.pyplot as plt

from splitlab.runs import chosen_epoch, epoch_bytes, finished_runs, watched_acc

GOAL_REDUCTION, GOAL_DROP_POINTS = 32, 0.5  # issue 52's goal: 32x fewer bytes at no more than half a point lost


def codec_part(spec):
    """The codec of a --compress value: ``bottleneck:2+int4`` -> ``int4``, ``bottleneck:2`` -> ``none``."""
    head, _, tail = spec.partition("+")
    return tail or ("none" if head.startswith("bottleneck:") else head)


def setting_of(config, method):
    """``(method, compress, compress_grad, cut_layer)`` of a run: ``split`` (vanilla), another variant's name or
    ``fedavg``; the gradients' codec as the run used it (None where no gradient is sent)."""
    compress = config.get("compress", "none")
    if method == "federated":
        return "fedavg", compress, None, None
    variant = config.get("variant", "vanilla")
    if variant == "local-loss":
        return "local-loss", compress, None, config["cut_layer"]
    return ("split" if variant == "vanilla" else variant, compress,
            config.get("compress_grad") or codec_part(compress), config["cut_layer"])


def load_compression(folder):
    """Every finished run of ``folder``, by setting: setting -> {seed: (watched accuracy at the chosen epoch,
    bytes of the last epoch)}."""
    runs = defaultdict(dict)
    for _, run in finished_runs(folder):
        setting = setting_of(run["config"], run["method"])
        runs[setting][run["config"]["seed"]] = (watched_acc(chosen_epoch(run["epochs"])),
                                                epoch_bytes(run["epochs"][-1]))
    return dict(runs)


def baseline_of(setting):
    """The uncompressed run a setting is measured against: vanilla split learning at its cut, or plain FedAvg."""
    method, _, _, cut = setting
    return ("fedavg", "none", None, None) if method == "fedavg" else ("split", "none", "none", cut)


def compression_entries(runs):
    """results/compression.json's list: one entry a setting whose baseline has runs of the same seeds."""
    entries = []
    for setting, by_seed in sorted(runs.items(), key=lambda item: (item[0][0], item[0][3] or 0, item[0][1])):
        base = runs.get(baseline_of(setting), {})
        seeds = sorted(set(by_seed) & set(base))
        if not seeds:
            continue
        method, compress, grad, cut = setting
        accuracies = [by_seed[s][0] for s in seeds]
        setting_bytes = statistics.median(by_seed[s][1] for s in seeds)
        entries.append({
            "method": method, "compress": compress, "compress_grad": grad, "cut_layer": cut,
            "bytes_per_epoch": setting_bytes,
            "bytes_reduction": statistics.median(base[s][1] for s in seeds) / setting_bytes,
            "accuracy_drop_points": 100 * statistics.median(base[s][0] - by_seed[s][0] for s in seeds),
            "val_acc": statistics.median(accuracies), "val_acc_min": min(accuracies), "val_acc_max": max(accuracies),
            "seeds": seeds})
    return entries


def write_compression_json(entries, path):
    path.write_text(json.dumps(entries, indent=1) + "\n")


def meets_goal(entry):
    return entry["bytes_reduction"] >= GOAL_REDUCTION and entry["accuracy_drop_points"] <= GOAL_DROP_POINTS


def compression_markdown(runs):
    entries = compression_entries(runs)
    lines = ["| method | cut | activations | gradients | MB an epoch | fewer bytes | validation accuracy (median; "
             "least-most) | points lost (median of seeds) | seeds |", "|---|---|---|---|--:|--:|---|--:|---|"]
    for e in entries:
        goal = " **goal**" if meets_goal(e) else ""
        lines.append(f"| {e['method']} | {e['cut_layer'] or '-'} | {e['compress']} | {e['compress_grad'] or '-'} | "
                     f"{e['bytes_per_epoch'] / 1e6:.2f} | {e['bytes_reduction']:.1f}x{goal} | {e['val_acc']:.2%} "
                     f"({e['val_acc_min']:.2%}-{e['val_acc_max']:.2%}) | {e['accuracy_drop_points']:+.2f} | "
                     f"{', '.join(map(str, e['seeds']))} |")
    lines.append(f"\nlenet5-report, 10 clients, the same epochs for every setting (compression.py), 5,000 training "
                 f"images held out: the validation accuracy at each run's best epoch, and the bytes of its last epoch "
                 f"(both directions, the evaluation's activations included). Each setting against the uncompressed "
                 f"run of the same seed: vanilla split learning at the same cut (so local-loss's row with codec none "
                 f"is what its local loss alone saves and costs), or plain FedAvg. Points lost: the median over "
                 f"seeds of that run's accuracy less this one's (negative: better). **goal**: at least "
                 f"{GOAL_REDUCTION}x fewer bytes at no more than {GOAL_DROP_POINTS} points lost.")
    return "\n".join(lines) + "\n"


def pareto(points):
    """The points no other beats in both bytes (fewer) and accuracy (higher), by bytes."""
    front = []
    for bytes_, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((bytes_, acc))
    return front


def compression_figure(runs):
    """Validation accuracy against bytes an epoch (log scale), a panel a cut; a point a setting with the seeds'
    spread; the Pareto front of the split settings drawn; FedAvg's settings in every panel for reference."""
    entries = compression_entries(runs)
    cuts = sorted({e["cut_layer"] for e in entries if e["cut_layer"]})
    fig, axes = plt.subplots(1, max(1, len(cuts)), figsize=(7 * max(1, len(cuts)), 5), squeeze=False)
    styles = {"split": ("o", "tab:blue"), "local-loss": ("s", "tab:green"), "fedavg": ("^", "tab:red")}
    for ax, cut in zip(axes[0], cuts or [None]):
        shown = [e for e in entries if e["cut_layer"] == cut or e["method"] == "fedavg"]
        for e in shown:
            marker, colour = styles.get(e["method"], ("x", "grey"))
            ax.errorbar(e["bytes_per_epoch"], e["val_acc"], yerr=[[e["val_acc"] - e["val_acc_min"]],
                                                                    [e["val_acc_max"] - e["val_acc"]]],
                        fmt=marker, color=colour, capsize=3)
            label = e["compress"] if e["method"] != "local-loss" else f"local-loss {e['compress']}"
            if e["method"] == "split" and e["compress_grad"] != codec_part(e["compress"]):
                label += f" / grad {e['compress_grad']}"
            ax.annotate(label, (e["bytes_per_epoch"], e["val_acc"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        front = pareto([(e["bytes_per_epoch"], e["val_acc"]) for e in shown if e["method"] != "fedavg"])
        if front:
            ax.step(*zip(*front), where="post", color="grey", linestyle="--", label="Pareto front (split family)")
        for method, (marker, colour) in styles.items():
            ax.plot([], [], marker, color=colour, label=method)
        ax.set_xscale("log")
        ax.set(xlabel="bytes an epoch (both directions)", ylabel="validation accuracy",
               title=f"lenet5-report, 10 clients, cut {cut}" if cut else "lenet5-report, 10 clients")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def one_client_markdown(folder):
    """Local-loss split learning with one client against regular learning, seed by seed (results/compression/
    one-client/: ``regular-s<seed>.json``, ``local-s<seed>.json``)."""
    runs = {path.stem: run for path, run in finished_runs(folder)}
    lines = ["| seed | regular learning | local-loss, one client | difference (points) |", "|---|--:|--:|--:|"]
    differences = []
    for seed in sorted(int(name[len("regular-s"):]) for name in runs if name.startswith("regular-s")):
        local = runs.get(f"local-s{seed}")
        if local is None:
            continue
        regular_acc, local_acc = (watched_acc(chosen_epoch(runs[name]["epochs"])) for name in
                                  (f"regular-s{seed}", f"local-s{seed}"))
        differences.append(100 * (local_acc - regular_acc))
        lines.append(f"| {seed} | {regular_acc:.2%} | {local_acc:.2%} | {differences[-1]:+.2f} |")
    if differences:
        lines.append(f"\nlenet5-report, 5 epochs, 5,000 training images held out: the validation accuracy at each "
                     f"run's best epoch. Median difference {statistics.median(differences):+.2f} points.")
    return "\n".join(lines) + "\n"


def attacks_markdown(folder):
    """attack.py on runs of make compression (``<run>-attack.json`` beside them): what the server rebuilds of the
    victims from coded activations, beside the run's accuracy."""
    lines = ["| method | cut | activations | validation accuracy | decoder SSIM (blind baseline) | white-box SSIM "
             "(blind baseline) |", "|---|---|---|--:|---|---|"]
    for path in sorted(folder.glob("*-attack.json")):
        attack = json.loads(path.read_text())
        run = json.loads(path.with_name(path.name.replace("-attack.json", ".json")).read_text())
        method, compress, _, cut = setting_of(run["config"], run["method"])
        scores = [f"{attack['attacks'][name]['ssim']:.3f} ({attack['attacks'][name]['baseline_ssim']:.3f})"
                  + (" failed" if attack["attacks"][name]["failed"] else "") for name in ("decoder", "white-box")]
        lines.append(f"| {method} | {cut} | {compress} | {watched_acc(chosen_epoch(run['epochs'])):.2%} | "
                     f"{' | '.join(scores)} |")
    lines.append("\nattack.py with its default budgets (the decoder's width and passes and the inversion's TV weight "
                 "and steps chosen on the attacker's held-out auxiliary images), on the last client's part of seed "
                 "0, the activations through the run's codec as the server saw them; 100 victims.")
    return "\n".join(lines) + "\n"
