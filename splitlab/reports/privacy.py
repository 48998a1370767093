"""Leakage and defences (privacy.py): each defence's accuracy against what the attacks rebuild, table and figure."""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from splitlab.runs import attacked_run, read_run, watched_acc


def load_privacy(privacy_dir):
    """One row per attack (a defence setting at a cut of a model, attacked with some auxiliary data) that has both
    its training results and its attack results."""
    rows = []
    for attack_path in sorted(Path(privacy_dir).glob("*-attack.json")):
        name = attacked_run(attack_path.name)
        run, attack = read_run(attack_path.parent / f"{name}.json"), read_run(attack_path)
        try:
            last = run["epochs"][-1]
            attack["attacks"]
        except (TypeError, KeyError, IndexError):  # either file unreadable (None), cut off, or not of this kind
            continue
        config = run["config"]
        rows.append({"setting": name, "model": config.get("model", "lenet5"), "cut": config.get("cut_layer", 1),
                     "clients": len(run.get("shard_sizes") or []) or config.get("world_size", 1) - 1,
                     "aux": attack.get("attack_settings", {}).get("aux", 5000),
                     "nopeek": config.get("nopeek", 0.0), "noise_std": config.get("noise_std", 0.0),
                     "test_acc": last["test_acc"], "watched_acc": watched_acc(last),
                     "dcor2": last.get("dcor2_bias_corrected"),
                     "dcor_batch": last.get("dcor_batch"), "epochs": len(run["epochs"]),
                     **{f"ssim_{k}": v["ssim"] for k, v in attack["attacks"].items()},
                     **{f"class_acc_{k}": v["classifier_accuracy"] for k, v in attack["attacks"].items()},
                     **{f"failed_{k}": v.get("failed") for k, v in attack["attacks"].items()}})  # None: no baseline
    return rows


def first_private_setting(rows, ssim_below=0.3, points=0.02):
    """The report's question: the first row (by model, cut, then defence) whose decoder SSIM is under
    ``ssim_below`` while its accuracy (``runs.watched_acc``: validation's where the runs held a set out) is within
    ``points`` of the undefended run of the same model, cut, clients and epochs; None if there is none."""
    def group(r):
        return r["model"], r["cut"], r["clients"], r["epochs"]
    undefended = {group(r): r["watched_acc"] for r in rows if not r["nopeek"] and not r["noise_std"]}
    candidates = [r for r in rows if group(r) in undefended and r.get("ssim_decoder", 1.0) < ssim_below
                  and r["watched_acc"] >= undefended[group(r)] - points]
    return min(candidates, key=lambda r: (r["model"], r["cut"], r["nopeek"], r["noise_std"]), default=None)


def ssim_cell(row, attack):
    """An attack's SSIM for the table, marked where the attack did no better than its baseline."""
    return f"{row.get(f'ssim_{attack}', float('nan')):.3f}" + (" attack failed" if row.get(f"failed_{attack}") else "")


def privacy_markdown(rows):
    lines = ["| model | cut | clients | epochs | setting | NoPeek W | noise S | test acc | dCor^2 bias-corrected "
             "| SSIM white-box | decoder's auxiliary images | SSIM decoder | classifier acc on decoder's images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["cut"], r["clients"], r["epochs"], r["nopeek"],
                                         r["noise_std"], r["aux"])):
        lines.append(f"| {r['model']} | {r['cut']} | {r['clients']} | {r['epochs']} | {r['setting']} | {r['nopeek']} "
                     f"| {r['noise_std']} | {r['test_acc']:.2%} | {r['dcor2']:.3f} | "
                     f"{ssim_cell(r, 'white-box')} | {r['aux']:,} | {ssim_cell(r, 'decoder')} | "
                     f"{r.get('class_acc_decoder', float('nan')):.1%} |")
    found = first_private_setting(rows)
    lines.append("\nVanilla split learning; test accuracy and leakage after the last epoch (the last client's part); "
                 "attacks on test images 0-99 (attack.py), the decoder trained on that many test images from 5,000 on. "
                 + (f"First setting with decoder SSIM under 0.3 within 2 points of its undefended run's accuracy: "
                    f"{found['setting']} ({found['test_acc']:.2%}, SSIM {ssim_cell(found, 'decoder')})." if found else
                    "No setting here has decoder SSIM under 0.3 within 2 points of its undefended run's accuracy.")
                 + " \"attack failed\": the attack did no better, image by image, than the same attack on a client "
                   "part with all weights zero (attack.py's baseline): a failure of the attack, not a measure of the "
                   "defence. Attacks run before the baseline existed carry no mark.")
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
            for attack, marker, face in (("decoder", "o", colour), ("white-box", "s", "none")):
                ax.plot(row.get(f"ssim_{attack}", float("nan")), row["test_acc"],
                        "x" if row.get(f"failed_{attack}") else marker, color=colour, markerfacecolor=face)
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
                Line2D([], [], marker="x", linestyle="none", color="black",
                       label="attack failed: no better than on a blind part"),
                Line2D([], [], color="grey", linestyle=":", label="SSIM 0.3: unrecognisable (He et al.)")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle("Split learning under each defence: what the server rebuilds, and what it costs in accuracy")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return fig
