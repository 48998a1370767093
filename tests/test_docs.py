"""The README and docs lead somewhere: every relative link names a file that exists, and every #anchor a heading
of that file (as GitHub makes anchors from headings)."""

import json
import re

from conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {anchor(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def broken_links(path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, mailto: ...
            continue
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (fragment and fragment not in anchors(linked)):
            broken.append(target)
    return broken


def test_every_link_of_the_readme_and_docs_leads_somewhere():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert {str(page.relative_to(ROOT)): broken_links(page) for page in pages if broken_links(page)} == {}



def test_the_readme_is_at_most_200_lines():
    """The README is for users (the house issue): the measurements and their history go to docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200

def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section (measured)\n")
    page = tmp_path / "page.md"
    page.write_text("[fine](other.md#a-section-measured) [gone](missing.md) [no such part](other.md#nowhere) "
                    "[web](https://example.org)")
    assert broken_links(page) == ["missing.md", "other.md#nowhere"]


def test_the_readmes_findings_are_the_committed_results():
    """The findings box quotes committed results files: a number that drifts from its file fails here."""
    from splitlab.reports.experiment import summarize
    from splitlab.reports.study import load_study, study_rows
    from splitlab.runs import epoch_bytes, read_run
    readme = " ".join((ROOT / "README.md").read_text().split())
    results = ROOT / "results"
    best = {name: summarize(read_run(results / f"{name}.json"))["best_acc"]
            for name in ("regular", "split", "sync_sgd", "federated")}
    assert (f"regular learning {best['regular']:.2%}, split learning {best['split']:.2%}, sync SGD "
            f"{best['sync_sgd']:.2%}, FedAvg {best['federated']:.2%} best test accuracy").replace("%", " %") in readme

    def per_epoch_mb(name):
        epochs = read_run(results / f"{name}.json")["epochs"]
        return sum(epoch_bytes(e) for e in epochs) / len(epochs) / 1e6
    split_mb, fedavg_mb = per_epoch_mb("split"), per_epoch_mb("federated")
    assert f"split learning sends {split_mb:.0f} MB an epoch, FedAvg {fedavg_mb:.1f} MB a round" in readme

    rows = {(method, partition): (mean, std)
            for method, partition, mean, std, _ in study_rows(load_study(results / "study"))}
    split_mean, split_std = rows[("split", "0.1")]
    assert f"split learning falls to {split_mean:.1%} +- {split_std * 100:.1f}".replace("%", " %") in readme
    assert f"FedAvg to {rows[('federated', '0.1')][0]:.1%}".replace("%", " %") in readme

    attack = read_run(results / "privacy" / "none-attack.json")
    assert f"at SSIM {attack['attacks']['decoder']['ssim']:.2f} (cut 1)" in readme
    first_round = read_run(results / "privacy" / "lenet5-fedavg-updates-attack.json")["rounds"]["first"]["attacks"]
    split_cut1 = read_run(results / "privacy" / "lenet5-cut1-none-aux5000-attack.json")["attacks"]["decoder"]
    at_best = read_run(results / "privacy" / "lenet5-fedavg-e5-b10-updates-attack.json")["rounds"]["first"]["attacks"]
    local_at_best = at_best["5 local epochs, batch 10"]["ssim"]
    assert (f"one-image updates at SSIM {first_round['one step, B=1']['ssim']:.2f} and a local epoch's at "
            f"{first_round['one local epoch, batch 64']['ssim']:.2f} ({local_at_best:.2f} at FedAvg's best setting), "
            f"where split learning's server gets {split_cut1['ssim']:.2f} from cut-1 activations") in readme


def careful_attack(setting):
    """make privacy-careful's attack of ``setting`` and the grid's run and attack of the same setting."""
    privacy = ROOT / "results" / "privacy"
    careful = json.loads((privacy / "careful" / f"{setting}-aux5000-attack.json").read_text())["attacks"]
    grid = json.loads((privacy / f"{setting}-aux5000-attack.json").read_text())["attacks"]
    return careful, grid


def test_what_the_findings_say_of_the_careful_attacker_is_its_committed_attacks():
    """docs/findings.md, "A careful attacker rebuilds more": the prose under the generated tables."""
    text = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    (c1, g1), (c2, g2) = careful_attack("lenet5-cut1-none"), careful_attack("lenet5-cut2-none")
    widths = {json.loads(path.read_text())["attacks"]["decoder"]["decoder_width"]
              for path in (ROOT / "results" / "privacy" / "careful").glob("*-attack.json")}
    assert widths == {128}
    assert (f"The decoder took width 128, the largest offered, every time, and rebuilt the undefended victims at SSIM "
            f"{c1['decoder']['ssim']:.3f} at cut 1 and {c2['decoder']['ssim']:.3f} at cut 2, against "
            f"{g1['decoder']['ssim']:.3f} and {g2['decoder']['ssim']:.3f} at the default budget.") in text
    w1, w2 = c1["white-box"], c2["white-box"]
    assert (f"with TV weight {w1['inversion_tv_weight']:g} and {w1['inversion_steps']:,} steps at cut 1 it rebuilt "
            f"the undefended victims at SSIM {w1['ssim']:.3f} ({w1['recognisable']:.0%} recognisable; "
            f"{g1['white-box']['ssim']:.3f} at the default), with TV weight {w2['inversion_tv_weight']:g} and "
            f"{w2['inversion_steps']:,} steps at cut 2 at {w2['ssim']:.3f} ({w2['recognisable']:.0%}; "
            f"{g2['white-box']['ssim']:.3f} at the default, its blind baseline {w2['baseline_ssim']:.3f})"
            ).replace("%", " %") in text
    assert not w2["failed"] and 0.4 < w2["ssim"] / c2["decoder"]["ssim"] < 0.6  # "about half as well"
    defaults = json.loads((ROOT / "results" / "privacy" / "lenet5-cut2-none-aux5000-attack.json").read_text())
    too_small = sorted(w["inversion_tv_weight"] / defaults["attack_settings"]["tv_weight"] for w in (w1, w2))
    assert f"the grid's default weight, 0.01, was {too_small[0]:.0f} to {too_small[1]:.0f} times too small" in text


def test_what_the_findings_say_of_noise_against_the_careful_attacker_is_its_committed_attacks():
    text = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    (none1, _), (noised1, _), (none2, _), (noised2, _) = (
        careful_attack(f"lenet5-cut{cut}-{setting}") for cut in (1, 2) for setting in ("none", "noise0.5"))
    decoder, inversion = noised1["decoder"], noised1["white-box"]
    assert (f"takes {none1['decoder']['ssim'] - decoder['ssim']:.2f} of SSIM from the careful decoder and "
            f"{none1['white-box']['ssim'] - inversion['ssim']:.2f} from the careful inversion at cut 1 (which chose "
            f"TV weight {inversion['inversion_tv_weight']:g} against the noise); {decoder['recognisable']:.0%} of the "
            f"noised cut-1 victims stay recognisable to the decoder. At cut 2 it takes "
            f"{none2['decoder']['ssim'] - noised2['decoder']['ssim']:.2f} from the decoder, and the inversion rebuilds "
            f"more, not less, from the client part trained under noise: {noised2['white-box']['ssim']:.3f} against "
            f"{none2['white-box']['ssim']:.3f} undefended ({noised2['white-box']['recognisable']:.0%} of the victims "
            "recognisable)").replace("%", " %") in text
    assert noised2["white-box"]["ssim"] > none2["white-box"]["ssim"]
    report, grid = careful_attack("lenet5-report-cut2-none")
    assert (f"the careful decoder rebuilds its victims at SSIM {report['decoder']['ssim']:.3f} "
            f"({grid['decoder']['ssim']:.3f} at the default budget), the careful inversion at "
            f"{report['white-box']['ssim']:.3f} (TV weight {report['white-box']['inversion_tv_weight']:g}; "
            f"{grid['white-box']['ssim']:.3f} at the default)") in text
    assert all(not attack["failed"] for attack in (*noised1.values(), *noised2.values()))


def test_what_the_findings_say_of_the_careful_attackers_budget_is_its_committed_curves():
    text = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    (c1, _), (c2, _) = careful_attack("lenet5-cut1-none"), careful_attack("lenet5-cut2-none")

    def second_half(curve):
        return {option: scores[-1] - scores[len(scores) // 2 - 1] for option, scores in curve.items()}
    gains = [second_half(c["white-box"]["inversion_held_out_curve"]) for c in (c1, c2)]
    chosen = max(gain[f"{c['white-box']['inversion_tv_weight']:g}"] for gain, c in zip(gains, (c1, c2)))
    spread = [max(s[-1] for s in c["white-box"]["inversion_held_out_curve"].values())
              - min(s[-1] for s in c["white-box"]["inversion_held_out_curve"].values()) for c in (c1, c2)]
    assert (f"the second half of its 3,000 steps adds at most {chosen:.3f} of held-out SSIM at the weight chosen "
            f"({max(max(g.values()) for g in gains):.3f} at any weight), while the weight moves it by "
            f"{spread[0]:.2f} at cut 1 and {spread[1]:.2f} at cut 2") in text

    def decoder_words(c):
        curve = c["decoder"]["decoder_held_out_curve"]
        halves, last = second_half(curve).values(), [curve[w][-1] for w in ("32", "64", "128")]
        wider = [b - a for a, b in zip(last, last[1:])]
        return f"{min(halves):.3f}-{max(halves):.3f}", f"{min(wider):.3f}-{max(wider):.3f}", wider
    passes1, wider1, _ = decoder_words(c1)
    passes2, wider2, doublings = decoder_words(c2)
    assert (f"The decoder is close to level at cut 1 (the second half of its 40 passes adds {passes1}, each doubling "
            f"of the width {wider1}) but not at cut 2 ({passes2} and {wider2})") in text
    assert doublings[1] < doublings[0]  # "each doubling gained less than the one before"


def test_what_the_findings_say_of_fedavgs_tv_weight_is_its_committed_probe():
    """docs/findings.md, "Both legs": FedAvg's inversion at three TV weights on the first 10 victims."""
    text = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    probe = ROOT / "results" / "privacy" / "careful" / "fedavg-tv"
    one_image = {}
    for weight in ("0.01", "0.1", "1"):
        found = json.loads((probe / f"lenet5-fedavg-e5-b10-victims10-tv{weight}-updates-attack.json").read_text())
        assert found["attack_settings"]["tv_weight"] == float(weight) and found["attack_settings"]["victims"] == 10
        assert found["config"]["local_epochs"] == 5 and found["config"]["batch_size"] == 10
        one_image[weight] = [found["rounds"][r]["attacks"]["one step, B=1"]["ssim"] for r in ("first", "last")]
    (low, low_last), (mid, mid_last), (high, high_last) = one_image.values()
    assert (f"one-image updates at the first round give SSIM {low:.3f} at weight 0.01, {mid:.3f} at 0.1 and "
            f"{high:.3f} at 1; at the last round {low_last:.3f}, {mid_last:.3f} and {high_last:.3f}. So a careful "
            f"weight would raise FedAvg's best case by about {mid - low:.2f}, to some {mid:.2f}") in text
    careful_cut1 = json.loads((probe.parent / "lenet5-cut1-none-aux5000-attack.json").read_text())["attacks"]
    assert 0.4 < mid / careful_cut1["decoder"]["ssim"] < 0.6  # "still half of what the careful decoder rebuilds"
    assert (f"rebuild the undefended cut-1 victims at SSIM {careful_cut1['decoder']['ssim']:.3f} by the decoder and "
            f"{careful_cut1['white-box']['ssim']:.3f} by the inversion") in text


def test_what_the_findings_say_of_fedavg_at_its_best_setting_is_its_committed_attack():
    """docs/findings.md, "Both legs": the updates of FedAvg at 5 local epochs, batch 10, against the report's."""
    text = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    privacy = ROOT / "results" / "privacy"
    best = json.loads((privacy / "lenet5-fedavg-e5-b10-updates-attack.json").read_text())
    report = json.loads((privacy / "lenet5-fedavg-updates-attack.json").read_text())["rounds"]
    trained = json.loads((privacy / "lenet5-fedavg-e5-b10.json").read_text())
    first, last = (best["rounds"][r]["attacks"] for r in ("first", "last"))
    local = "5 local epochs, batch 10"
    assert best["config"]["local_epochs"] == 5 and best["config"]["batch_size"] == 10
    assert not first[local]["failed"] and first[local]["baseline_ssim"] == last[local]["baseline_ssim"]
    assert first[local]["recognisable"] == last[local]["recognisable"] == last["one step, B=1"]["recognisable"] == 0
    assert (f"{trained['epochs'][-1]['test_acc']:.2%} test accuracy) the update of the local training, 50 SGD steps "
            f"over the victims' shard, gives the inversion even less: SSIM {first[local]['ssim']:.3f} at the first "
            f"round and {last[local]['ssim']:.3f} at the last (baseline {first[local]['baseline_ssim']:.3f}; none "
            "recognisable; the attack did not fail), against "
            f"{report['first']['attacks']['one local epoch, batch 64']['ssim']:.3f} and "
            f"{report['last']['attacks']['one local epoch, batch 64']['ssim']:.3f} for one local epoch at batch 64. "
            f"One-image updates of its better-trained final model fall to {last['one step, B=1']['ssim']:.3f} (none "
            f"recognisable; {last['one step, B=1']['labels_read_right']:.0%} of the labels read), where the report's "
            f"setting's final model gave {report['last']['attacks']['one step, B=1']['ssim']:.3f}. FedAvg at its best "
            f"leaks less, not more. On the 2-core VM (2026-12-04) its training took "
            f"{trained['epochs'][-1]['elapsed_s']:,.0f} s and the attack {best['time_s']:,.0f} s").replace("%", " %") \
        in text

def decision_winners(name, model):
    """The table of ``model`` in results/<name>.md (decision.py) as ``{(clients, Mbit/s): winner}``: a method's
    label, "tie" or "undecided"."""
    winners, bandwidths = {}, None
    for line in (ROOT / "results" / f"{name}.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith(f"| {model}: clients |"):
            bandwidths = [int(cell.split()[0].replace(",", "")) for cell in cells[2:]]
        elif bandwidths and line.startswith("|") and cells[0].replace(",", "").isdigit():
            for bandwidth, cell in zip(bandwidths, cells[2:]):
                won = re.match(r"\*\*(.+?)\*\*", cell)
                winners[int(cells[0].replace(",", "")), bandwidth] = won[1] if won else cell.split(":")[0]
        elif not line.startswith("|"):
            bandwidths = None
    return winners


def test_the_readmes_verdicts_are_the_committed_maps():
    """What the README says wins where (lenet5-report, IID and Dirichlet 0.5) is what decision.md and
    decision-a0.5.md give."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    slow, fast = (1, 10), (100, 1000, 10000)
    iid, skewed = decision_winners("decision", "lenet5-report"), decision_winners("decision-a0.5", "lenet5-report")
    assert {iid[k, b].split(" [")[0] for k in (10, 100) for b in slow + fast} == {"FedAvg"}  # at its chosen setting
    assert [iid[1000, b].split(" [")[0] for b in slow + fast] == \
        ["Split learning", "Split learning", "SplitFed V2", "tie", "FedAvg"]
    assert {skewed[10, b] for b in slow + fast} == {"FedAvg"}
    assert {skewed[1000, b] for b in fast} == {"SplitFed V2"} and {skewed[1000, b] for b in slow} == {"tie"}
    assert {skewed[100, b] for b in slow + fast} == {"undecided"}
    assert "Split learning" not in {skewed[cell] for cell in skewed}
    assert ("with every method at its best (8 settings each, chosen on validation, 3 seeds), FedAvg reaches 80 % first "
            "with 10 and 100 data holders at every bandwidth from 1 Mbit/s to 10 Gbit/s; with 1,000, split learning "
            "up to 10 Mbit/s, SplitFed V2 at 100 Mbit/s and FedAvg at 10 Gbit/s. Tuning the split methods changed no "
            "cell. At Dirichlet 0.5 (the report's settings) most cells are ties or undecided: FedAvg with 10 holders, "
            "SplitFed V2 with 1,000 from 100 Mbit/s.") in readme
    assert ('"Less communication bandwidth than FL" holds only with 1,000 holders on links up to 100 Mbit/s, where a '
            "split method is first; with the report's own 10 holders, and with 100, FedAvg at its best is first on "
            "every link.") in readme and {iid[1000, b].split(" [")[0] for b in slow + (100,)} <= {"Split learning",
                                                                                           "SplitFed V2"}
    assert ("1,000 data holders: split learning up to 10 Mbit/s, SplitFed V2 at 100 Mbit/s, FedAvg at 10 Gbit/s** (a "
            "tie of SplitFed V2 and FedAvg at 1 Gbit/s)") in readme
    assert ("FedAvg with 10 holders at every bandwidth; SplitFed V2 with 1,000 from 100 Mbit/s (a tie with split "
            "learning below); with 100 holders undecided") in readme
    # the rounds it quotes: FedAvg's median [range] at McMahan et al.'s setting [c] and at the report's [f]
    table = (ROOT / "results" / "decision.md").read_text().split("| lenet5-report: clients |")[1].split("\n\n")[0:2]
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in table[0].splitlines() if line.startswith("| 1")}
    assert "FedAvg [c] 2 [2-3]," in rows["100"] and "FedAvg [f] 19 [18-20+]," in rows["100"]
    assert "FedAvg [c] 10 [9-13]," in rows["1,000"]
    assert ("[c] batch 10, lr 0.01, 5 local epoch(s), 10% of the clients a round" in table[1]
            and "[f] batch 64, lr 0.01, 1 local epoch(s), 100% of the clients a round" in table[1])
    assert ("5 local epochs at batch 10 on a tenth of the holders a round (McMahan et al.'s setting, chosen on "
            "validation among 8) reach 80 % in 2 rounds, where the report's setting needed 18 to over 20") in readme
    assert "FedAvg at its best needs 10 rounds of a tenth of the holders there" in readme
    findings = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    slowest = table[0].split("| 100 |")[1].split("|")[1]  # 100 holders at 1 Mbit/s
    assert "**FedAvg [c]** 58 s" in slowest and "(Split learning [e] 17 min" in slowest
    assert ("reaches 80 % in 2 rounds (seeds: 2 to 3), where the report's setting ([f]) took 18, 19 and more than 20, "
            "and so beats split learning's 17 min at 1 Mbit/s in 58 s") in findings
    assert "the same setting needs 10 rounds (9 to 13)" in findings




def test_what_the_findings_say_of_lenet5s_map_is_the_committed_map():
    """lenet5's map from make decision's three seeds (split learning evaluated every tenth), as findings reads it."""
    won = {cell: winner.split(" [")[0] for cell, winner in decision_winners("decision", "lenet5").items()}
    every = (1, 10, 100, 1000, 10000)
    assert [won[10, b] for b in every] == ["FedAvg"] * 5
    assert [won[100, b] for b in every] == ["Split learning"] * 3 + ["SplitFed V2", "FedAvg"]
    assert [won[1000, b] for b in every] == ["Split learning"] * 2 + ["tie"] + ["SplitFed V2"] * 2
    table = (ROOT / "results" / "decision.md").read_text().split("| lenet5: clients |")[1].split("\n\n")[0]
    epochs = sorted(float(e) for e in re.findall(r"Split learning ([\d.]+)(?: \[([\d.]+)-([\d.]+)\])?,", table)
                    for e in e if e)
    assert (epochs[0], epochs[-1]) == (0.2, 0.3)
    findings = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    assert ("FedAvg first with 10 holders on every link; split learning first with 100 holders up to 100 Mbit/s and "
            "with 1,000 up to 10 Mbit/s (80 % after 0.2-0.3 of an epoch); SplitFed V2 with 100 at 1 Gbit/s and with "
            "1,000 from 1 Gbit/s (a tie with split learning at 100 Mbit/s); FedAvg with 100 at 10 Gbit/s.") in findings

def test_what_the_docs_say_of_the_split_methods_at_their_best_is_the_committed_trials():
    """The README and findings on split learning's and SplitFed V2's 8 settings each: which setting wins, which
    never learn, and how many have SplitFed V2 at 80 % after one epoch, as decision.md and the trials' runs say."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    findings = " ".join((ROOT / "docs" / "findings.md").read_text().split())
    decision = (ROOT / "results" / "decision.md").read_text()
    table, notes = decision.split("| lenet5-report: clients |")[1].split("\n\n")[:2]
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in table.splitlines() if line.startswith("| 1")}
    letters = {method: dict(re.findall(r"\[([a-h])\] (batch \d+, lr [\d.]+)", words))
               for method, words in (part.split(": ", 1) for part in notes.removeprefix("Settings: ").split("; "))}
    split = letters["Split learning"]
    assert split["e"] == "batch 64, lr 0.01" and split["f"] == "batch 64, lr 0.02" and split["c"] == "batch 32, lr 0.05"
    assert "Split learning [f] 0.4 [0.2-0.4]," in rows["10"]  # chosen with 10 holders
    assert all("Split learning [e] 0.3 [0.3-0.4]," in rows[k] for k in ("100", "1,000"))
    never = [letter for letter, words in split.items() if words.endswith("lr 0.1")]
    assert sorted(never) == ["d", "h"] and all(f"Split learning [{letter}] > 3" in row for letter in never
                                                for row in rows.values())
    trials = ROOT / "results" / "decision" / "lenet5-report" / "trials"
    fast = [json.loads(path.read_text()) for path in sorted(trials.glob("split-b*-lr0.1/split-iid-s0*.json"))]
    assert len(fast) == 6 and all(run["epochs_at_chance"] for run in fast)
    assert "at 0.1 it never reaches 80 % (each of its 6 runs at chance in some epoch)" in readme
    collapsed = [json.loads((trials / "split-b32-lr0.05" / f"split-iid-s0-k{k}.json").read_text())["epochs"][-1]
                 ["val_acc"] for k in (100, 1000)]
    assert (f"it collapses with 100 and 1,000 holders ({collapsed[0]:.1%} and {collapsed[1]:.1%} of validation images "
            "right after 3 epochs)").replace("%", " %") in findings
    in_one = [letter for letter in letters["SplitFed V2"]
              if all(f"SplitFed V2 [{letter}] 1," in row for row in rows.values())]
    assert f"one epoch at {len(in_one)} of its 8 settings with every number of holders" in readme
    assert f"SplitFed V2 has 80 % after one epoch at {len(in_one)} of its 8 settings" in findings


def hosts_table():
    """results/hosts.md (benchmarks/bench_hosts.py) as ``{(first cell, second cell): [the numbers after]}``."""
    rows = {}
    for line in (ROOT / "results" / "hosts.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[\d.]+", cells[-1]):
            rows[tuple(cells[:2]) if not re.fullmatch(r"[\d.]+", cells[1]) else (cells[0],)] = \
                [float(cell) for cell in cells[1:] if re.fullmatch(r"[\d.]+", cell)]
    return rows


def test_the_across_hosts_findings_are_the_committed_table():
    """docs/performance.md, "Across hosts", says what results/hosts.md holds."""
    text = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    table = hosts_table()
    trips = [table[(rate,)][2] for rate in ("10mbit", "100mbit", "1gbit")]  # measured / rate
    assert "take 8 to 9 % longer than twice their size over the rate at all three rates" in text
    assert [round(100 * (ratio - 1)) for ratio in trips] == [8, 9, 9], trips
    alone, busy = table[("10mbit",)][3:5]
    assert f"at 10 Mbit/s {alone:.0f} and {busy:.0f} ms" in text and busy / alone < 1.05
    split = [table[("split", rate)][3] for rate in ("10mbit", "100mbit", "1gbit")]  # model / measured
    assert ("Vanilla split learning: the model is 9 to 15 % short** (9 % at 10 Mbit/s, 15 % at 100 Mbit/s, 12 % at "
            "1 Gbit/s)") in text
    assert [round(100 * (1 - ratio)) for ratio in split] == [9, 15, 12], split
    _, measured, modelled, *_ = table[("sflv2", "10mbit")]
    assert f"it gave {modelled:.2f} s where {measured:.2f} s was measured at 10 Mbit/s" in text
    _, measured, modelled, *_ = table[("fedavg", "10mbit")]
    assert f"({modelled:.2f} s modelled, {measured:.2f} s measured at 10 Mbit/s)" in text
    assert abs(modelled / measured - 1) <= 0.15
    estimates = {key: row[-1] for key, row in table.items() if len(key) == 2}
    assert "came within 17 % for vanilla split learning and FedAvg (17 % short to 12 % long)" in text
    assert [round(100 * (r - 1)) for key, r in estimates.items() if key[0] != "sflv2"] == [-10, -17, -13, -13, 3, 12]
    assert "from 3 % short to 31 % long for SplitFed V2" in text
    assert [round(100 * (r - 1)) for key, r in estimates.items() if key[0] == "sflv2"] == [-3, 26, 31]


def test_the_many_core_and_gpu_findings_quote_their_tables():
    """docs/performance.md, "On 16 cores and an H200 GPU": every figure its findings quote is in the tables that
    section generates from results/device/, or one the file reports elsewhere (the measurement before the policy,
    the 2-core tables); the README's speed line quotes only the file's tables."""
    text = (ROOT / "docs" / "performance.md").read_text()
    section = text.split("## On 16 cores and an H200 GPU")[1].split("\n## ")[0]
    findings = section.split("What they say, and what was done about it:")[1]
    elsewhere = text.replace(section, "") + section.replace(findings, "")
    quoted = re.findall(r"\d+\.\d\d", findings)
    assert len(quoted) > 20 and [n for n in quoted if not re.search(rf"(?<![\d.]){n}(?!\d)", elsewhere)] == []
    speed = next(line for line in (ROOT / "README.md").read_text().split("\n- ") if line.startswith("**Speed**"))
    quoted = re.findall(r"\d+\.\d\d", speed)  # the README's speed line quotes the file's tables
    assert len(quoted) == 4 and [n for n in quoted if not re.search(rf"\| {n} \|", text)] == []


def test_a_benchmark_log_becomes_a_table_with_its_failures(tmp_path):
    from splitlab.reports.pages import _benchmark_log
    log = tmp_path / "bench.log"
    log.write_text("== 16 cores; torch 2.11\n== commit abc\n\n== 2 cores (taskset -c 0-1)\nround 1: regular    4.00 s\n"
                   "round 1: split, 2 ranks   6.00 s\nround 2: regular    2.00 s\nround 2: split, 2 ranks   9.00 s\n"
                   "== vgg-small, split\nround 1: cpu   23.23 s\nSystemExit: error: this command failed (status 1):\n")
    assert _benchmark_log(log).splitlines()[2:] == [
        "| 2 cores (taskset -c 0-1) | regular | 4.00, 2.00 | 3.00 | 1.00 |",
        "| 2 cores (taskset -c 0-1) | split, 2 ranks | 6.00, 9.00 | 7.50 | 2.50 |",
        "| vgg-small, split | cpu | 23.23 | 23.23 | 1.00 |",
        "| vgg-small, split | the next run | failed (the log has its error) | | |"]


def test_every_table_in_the_readme_and_docs_is_what_the_committed_results_give():
    """The tables are cog blocks (splitlab/reports/pages.py): one that differs from what the committed results
    files give (a number typed or left behind) is named here; `python plot_results.py` rewrites them."""
    from splitlab.reports import pages
    assert [str(page.relative_to(ROOT)) for page in pages.regenerate(pages.pages(), check=True)] == []


def test_a_table_block_that_differs_from_its_results_is_found(tmp_path):
    import shutil

    from splitlab.reports import pages
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "study", results / "study")
    page = tmp_path / "page.md"
    page.write_text('Before.\n\n<!-- [[[cog table("noniid") ]]] -->\n<!-- [[[end]]] -->\n\nAfter.\n')
    assert pages.regenerate([page], results) == [page]  # filled in
    filled = page.read_text()
    assert "| Split learning | 54.5% ± 10.3% (n=3) |" in filled and filled.endswith("\nAfter.\n")
    assert pages.regenerate([page], results, check=True) == []

    page.write_text(filled.replace("54.5%", "55.5%"))  # a number typed over
    assert pages.regenerate([page], results, check=True) == [page]
    page.write_text(filled)
    path = results / "study" / "split-a0.1-s0.json"  # a results file that changed: one seed 5 points lower
    run = json.loads(path.read_text())
    for epoch in run["epochs"]:
        epoch["test_acc"] -= 0.05
    path.write_text(json.dumps(run))
    assert pages.regenerate([page], results, check=True) == [page]


def test_what_the_readme_says_of_compression_is_the_committed_table():
    """The findings box quotes results/compression.json (make compression): a number that drifts fails here."""
    entries = {(e["method"], e["compress"], e["cut_layer"]): e
               for e in json.loads((ROOT / "results" / "compression.json").read_text())}
    readme = " ".join((ROOT / "README.md").read_text().split())

    def quoted(method, compress, cut):
        entry = entries[(method, compress, cut)]
        return f"{entry['bytes_reduction']:.0f}x fewer bytes for {entry['accuracy_drop_points']:.1f} points"

    assert f"local-loss split learning with a learned 2-channel bottleneck and int4 at cut 1 sends " \
           f"{quoted('local-loss', 'bottleneck:2+int4', 1)}" in readme
    assert f"vanilla split learning with it {quoted('split', 'bottleneck:2+int4', 1)}" in readme
    assert f"int8 at the cut {quoted('split', 'int8', 1)}" in readme
    assert f"FedAvg's int8 updates {quoted('fedavg', 'int8', None)}" in readme
