"""Leakage and defences (privacy.py): each defence's accuracy against what the attacks rebuild, table and figure;
the careful attacker (make privacy-careful) beside the grid's, with how its attacks grow with their budget; and
both legs side by side: what a split server rebuilds from activations (attack.py) beside what a FedAvg server
rebuilds from updates (attack_updates.py), on the same victims."""

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from splitlab.runs import attacked_run, local_training_name, read_run, watched_acc


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
                     **{f"failed_{k}": v.get("failed") for k, v in attack["attacks"].items()},  # None: no baseline
                     **{f"baseline_ssim_{k}": v.get("baseline_ssim") for k, v in attack["attacks"].items()},
                     **{f"recognisable_{k}": v.get("recognisable") for k, v in attack["attacks"].items()},
                     **{f"budget_{k}": chosen_budget(v) for k, v in attack["attacks"].items()},
                     **{f"curve_{k}": v.get("decoder_held_out_curve", v.get("inversion_held_out_curve"))
                        for k, v in attack["attacks"].items()},
                     **offered_budgets(attack.get("attack_settings", {})), "attack_s": attack.get("time_s"),
                     "victims": attack.get("attack_settings", {}).get("victims", 100),
                     "smashed_shape": next((m["shape_per_example"] for m in run.get("server_received", [])
                                            if m["tag"] == "SMASHED"), None)})
    return rows


def chosen_budget(scores):
    """The budget an attack chose on the attacker's own held-out images (attack.py), in words; None where its file
    records no choice (the white-box inversion before attack.py chose one)."""
    if "decoder_width" in scores:
        return f"width {scores['decoder_width']}, {scores['decoder_epochs']} passes"
    if "inversion_tv_weight" in scores:
        return f"TV {scores['inversion_tv_weight']:g}, {scores['inversion_steps']:,} steps"
    return None


def offered_budgets(settings):
    """What each attack of attack.py's ``settings`` could choose from, in words (older files: one fixed budget)."""
    def listed(values):
        return "/".join(f"{v:g}" for v in values)
    tv_weights = settings.get("tv_weights", [settings.get("tv_weight", 0.01)])
    most = {"most_decoder": settings.get("decoder_epochs", 20), "most_white-box": settings.get("inversion_steps", 600)}
    return {"offered_decoder": f"width {listed(settings.get('decoder_widths', [32]))}, up to "
                               f"{most['most_decoder']} passes",
            "offered_white-box": f"TV {listed(tv_weights)}, up to {most['most_white-box']:,} steps", **most}


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


def largest_aux(rows):
    """Of each setting's attacks, the one with the most auxiliary images."""
    return [r for r in rows if r["aux"] == max(o["aux"] for o in rows if o["setting"] == r["setting"])]


def load_careful(privacy_dir):
    """The careful attacker (``<privacy_dir>/careful/``: client parts trained again with the grid's settings, each
    attack's budget chosen on the attacker's own held-out images), each row with the grid's row of the same setting
    (``grid``: attack.py's default budgets, the largest auxiliary set; None where the grid has no such run)."""
    grid = {r["setting"]: r for r in largest_aux(load_privacy(privacy_dir))}
    return [{**r, "grid": grid.get(r["setting"])} for r in largest_aux(load_privacy(Path(privacy_dir) / "careful"))]


def careful_markdown(rows):
    lines = ["| model | cut | setting | test acc (grid's run) | attack | offered | chosen on held-out images "
             "| SSIM (grid's, default budget) | recognisable (grid's) | blind baseline | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["cut"], r["nopeek"], r["noise_std"])):
        grid, minutes = r["grid"] or {}, r["attack_s"] and r["attack_s"] / 60
        for attack in ("decoder", "white-box"):
            lines.append(
                f"| {r['model']} | {r['cut']} | {r['setting']} | {r['test_acc']:.2%} "
                f"({_or_dash(grid.get('test_acc'), '.2%')}) | {attack} | {r[f'offered_{attack}']} "
                f"| {r[f'budget_{attack}'] or 'fixed'} | {ssim_cell(r, attack)} "
                f"({_or_dash(grid.get(f'ssim_{attack}'), '.3f')}) | {_or_dash(r[f'recognisable_{attack}'], '.0%')} "
                f"({_or_dash(grid.get(f'recognisable_{attack}'), '.0%')}) "
                f"| {_or_dash(r[f'baseline_ssim_{attack}'], '.3f')} | {_or_dash(minutes, '.0f')} |")
    lines.append("\nThe careful attacker (attack.py with --decoder-widths, --decoder-epochs, --tv-weights and "
                 "--inversion-steps): each attack's budget chosen on the attacker's own held-out auxiliary images, "
                 "never on the victims (test images 0-99); client parts trained again with the grid's settings "
                 "(results/privacy/careful/); in brackets the grid's run and its attack at attack.py's defaults "
                 "(decoder width 32, up to 20 passes; inversion TV 0.01, 600 steps, before it chose its step). "
                 "Minutes: the whole attack file's, both attacks and their blind baselines, on the 2-core VM. "
                 "\"fixed\": that attack ran before attack.py chose its budget.")
    return "\n".join(lines) + "\n"


def budget_markdown(rows):
    """How each careful attack grows with its budget: for each decoder width and each TV weight offered, the
    attacker's held-out SSIM at its first look, after half the most budget, and after all of it (attack.py's
    ``decoder_held_out_curve``: a look a pass; ``inversion_held_out_curve``: a look every 100 steps)."""
    lines = ["| model | cut | setting | attack | width or TV weight | most budget | held-out SSIM: first look "
             "| half the budget | all of it | gain in the second half |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["cut"], r["nopeek"], r["noise_std"])):
        for attack, unit in (("decoder", "passes"), ("white-box", "steps")):
            for option, scores in (r[f"curve_{attack}"] or {}).items():
                half, last = scores[len(scores) // 2 - 1], scores[-1]
                lines.append(f"| {r['model']} | {r['cut']} | {r['setting']} | {attack} "
                             f"| {'width' if attack == 'decoder' else 'TV'} {option} | {r[f'most_{attack}']:,} {unit} "
                             f"| {scores[0]:.3f} | {half:.3f} | {last:.3f} | {last - half:+.3f} |")
    lines.append("\nHeld-out SSIM: on the careful attacker's own auxiliary images held out (results/privacy/careful/), "
                 "never on the victims. Where the second half of a budget adds little, more of it would add little "
                 "more; down a setting's widths, what a larger decoder adds.")
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


def strongest_noise_within(rows, points=0.01):
    """Of each split grid (model, cut, clients, epochs), the undefended run and the run with the most noise on its
    activations whose accuracy is within ``points`` of it: the defence at (almost) no cost in accuracy."""
    def group(r):
        return r["model"], r["cut"], r["clients"], r["epochs"]
    undefended = {group(r): r for r in rows if not r["nopeek"] and not r["noise_std"]}
    noised = {}
    for r in rows:
        base = undefended.get(group(r))
        if not r["nopeek"] and r["noise_std"] and base and r["watched_acc"] >= base["watched_acc"] - points:
            noised[group(r)] = max(noised.get(group(r), r), r, key=lambda o: o["noise_std"])
    return [*undefended.values(), *noised.values()]


def load_legs(privacy_dir):
    """Both legs, one row per attack: split learning's undefended runs and their strongest noise within a point of
    accuracy (each cut, both attacks, the largest auxiliary set), each followed by the careful attacker's attacks on
    the same setting where ``careful/`` has them (:func:`load_careful`), and every FedAvg update attack
    (attack_updates.py: each case at the first and the last round). Each row: what the server sees of the victims
    and its bytes, SSIM with its blind baseline, the share recognisable, the classifier's accuracy on the rebuilt
    images, the labels, and the model's test accuracy."""
    rows = []
    chosen = sorted(strongest_noise_within(largest_aux(load_privacy(privacy_dir))),
                    key=lambda r: (r["model"], r["cut"], r["noise_std"]))
    careful = {r["setting"]: r for r in load_careful(privacy_dir)}
    split = [pair for r in chosen for pair in ((r, False), (careful.get(r["setting"]), True)) if pair[0]]
    for r, by_careful in split:
        shape = r["smashed_shape"]
        noise = f", noise {r['noise_std']:g} on them" if r["noise_std"] else ""
        for attack in ("decoder", "white-box"):
            if by_careful and not r[f"budget_{attack}"]:
                continue  # attacked before attack.py chose this attack's budget: no more careful than the grid's
            budget = f" ({r[f'budget_{attack}']}, chosen)" if by_careful else ""
            rows.append({"model": r["model"], "clients": r["clients"], "epochs": r["epochs"],
                         "leg": "split learning", "round": "last", "sees": f"cut-{r['cut']} activations{noise}",
                         "attack": f"{'careful ' if by_careful else ''}{attack}{budget}", "careful": by_careful,
                         "test_acc": r["test_acc"],
                         "bytes": r["victims"] * math.prod(shape) * 4 if shape else None, "labels": None,
                         **{key: r.get(f"{key}_{attack}") for key in ("ssim", "baseline_ssim", "failed",
                                                                      "recognisable", "class_acc")}})
    for path in sorted(Path(privacy_dir).glob("*-updates-attack.json")):
        found = read_run(path)
        try:
            model, rounds = found["config"]["model"], found["rounds"]
        except (TypeError, KeyError):  # unreadable (None) or not of this kind
            continue
        config = found["config"]
        defence = (f", clipped to {config['clip_update']:g}, noise {config.get('update_noise', 0.0):g} x that"
                   if config.get("clip_update") else "")
        local = config.get("local_epochs", 1)  # a run trained at other than the report's one local epoch says so
        trained = local_training_name(local, config["batch_size"]) if local != 1 else None
        for round_name, at in rounds.items():
            for case, a in at["attacks"].items():
                of_run = f" (a model of {trained})" if trained and not case.startswith(trained) else ""
                rows.append({"model": model, "clients": config["clients"], "epochs": config["epochs"],
                             "leg": "FedAvg", "round": round_name, "sees": f"updates: {case}{of_run}{defence}",
                             "attack": "gradient inversion", "test_acc": at["test_acc"], "bytes": a["bytes_seen"],
                             "labels": a["labels_read_right"], "ssim": a["ssim"], "baseline_ssim": a["baseline_ssim"],
                             "failed": a["failed"], "recognisable": a["recognisable"],
                             "class_acc": a["classifier_accuracy"]})
    return sorted(rows, key=lambda r: (r["model"], r["clients"], r["epochs"]))  # stable: each leg's order kept


def _or_dash(value, form):
    """``value`` as ``form`` formats it, or "-" where the run did not record it."""
    return "-" if value is None else format(value, form)


def legs_markdown(rows):
    lines = ["| model | clients | epochs | leg | the server sees of the 100 victims | bytes | attack | round "
             "| SSIM (blind baseline) | recognisable (SSIM > 0.5) | classifier acc on rebuilt | labels read right "
             "| model's test acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        labels = "given" if r["leg"] == "FedAvg" and r["labels"] is None else _or_dash(r["labels"], ".0%")
        lines.append(f"| {r['model']} | {r['clients']} | {r['epochs']} | {r['leg']} | {r['sees']} "
                     f"| {_or_dash(r['bytes'], ',')} | {r['attack']} | {r['round']} "
                     f"| {r['ssim']:.3f} ({_or_dash(r['baseline_ssim'], '.3f')})"
                     f"{' attack failed' if r['failed'] else ''} | {_or_dash(r['recognisable'], '.0%')} "
                     f"| {r['class_acc']:.0%} | {labels} | {r['test_acc']:.2%} |")
    lines.append("\nThe same victims (test images 0-99) on both legs. Split learning: the server's view after the last "
                 "epoch of the undefended runs (make privacy) and of the most noise on the activations within a point "
                 "of their accuracy, a decoder trained on the attacker's auxiliary images and white-box inversion; "
                 "\"careful\": the same setting trained again and attacked with each attack's budget chosen on the "
                 "attacker's own held-out images (results/privacy/careful/). "
                 "FedAvg: each update one client's, made from some of the victims, inverted as in Inverting "
                 "Gradients (attack_updates.py) at the first round's model and the last; its labels read from the "
                 "update (iDLG, label counts), given where the update is several local steps. Bytes: what "
                 "the server received that carries the victims. \"attack failed\": no better, image by image, than "
                 "the same attack on a model with all weights zero; \"-\": not recorded by that run.")
    return "\n".join(lines) + "\n"


CAREFUL_COLOUR = "#0b3c6b"  # a darker blue than split learning's: the same leg, a stronger attacker


def legs_figure(rows):
    """Each attack's SSIM as a bar, its blind baseline as a black tick, failed attacks hatched, a panel a grid
    (model, clients, epochs); the share recognisable written at the bar's end."""
    def group(r):
        return r["model"], r["clients"], r["epochs"]
    groups = sorted({group(r) for r in rows})
    sizes = [sum(group(r) == g for r in rows) for g in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 0.32 * len(rows) + 1.6 * len(groups) + 0.8), squeeze=False,
                             gridspec_kw={"height_ratios": sizes})
    for ax, (model, clients, epochs) in zip(axes[:, 0], groups):
        mine = [r for r in rows if group(r) == (model, clients, epochs)][::-1]  # the table's order, top to bottom
        for y, r in enumerate(mine):
            colour = CAREFUL_COLOUR if r.get("careful") else "C0" if r["leg"] == "split learning" else "C1"
            ax.barh(y, r["ssim"], color="white" if r["failed"] else colour, edgecolor=colour,
                    hatch="//" if r["failed"] else None)
            if r["baseline_ssim"] is not None:
                ax.plot([r["baseline_ssim"]] * 2, [y - 0.4, y + 0.4], color="black")
            note = "; ".join(([] if r["recognisable"] is None else [f"{r['recognisable']:.0%} recognisable"])
                             + (["attack failed"] if r["failed"] else []))
            ax.text(max(r["ssim"], 0) + 0.015, y, note, va="center", fontsize=7)
        ax.set_yticks(range(len(mine)), [textwrap.fill(f"{r['sees']}, {r['attack']}"
                                                       + (f", {r['round']} round" if r["leg"] == "FedAvg" else ""), 60)
                                         for r in mine], fontsize=7)  # wrapped: the longest were cut off
        ax.axvline(0.5, color="grey", linestyle=":")
        ax.set(xlim=(0, 1.3), title=f"{model}: {clients} clients, {epochs} epochs", ylim=(-0.6, len(mine) - 0.4))
    axes[-1, 0].set_xlabel("SSIM of the rebuilt victims (100 test images)")
    handles = [plt.Rectangle((0, 0), 1, 1, color="C0", label="split learning: activations (after the last epoch)"),
               plt.Rectangle((0, 0), 1, 1, color=CAREFUL_COLOUR,
                             label="split learning: a careful attacker (budgets chosen on held-out images)"),
               plt.Rectangle((0, 0), 1, 1, color="C1", label="FedAvg: updates"),
               plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="grey", hatch="//",
                             label="attack failed (no better than its blind baseline)"),
               Line2D([], [], color="black", label="blind baseline"),
               Line2D([], [], color="grey", linestyle=":", label="SSIM 0.5: recognisable")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("What the server rebuilds of the same 100 images: split learning's activations, FedAvg's updates")
    fig.tight_layout(rect=(0, 1.0 / (0.32 * len(rows) + 1.6 * len(groups) + 0.8), 1, 0.97))
    return fig
