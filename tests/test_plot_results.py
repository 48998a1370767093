"""Figure 1, the comparison figure and the summary table from small fixture results files."""

import json
import sys

import pytest

from conftest import run, script
from splitlab.reports.experiment import load_results, summarize, summary_markdown


def write_run(folder, method, losses, accs, seconds=2.0, sent=100):
    epochs = [{"epoch": i + 1, "train_loss": 1.0, "test_loss": loss, "test_acc": acc, "epoch_time_s": seconds,
               "elapsed_s": seconds * (i + 1), "bytes_sent": sent, "bytes_received": sent}
              for i, (loss, acc) in enumerate(zip(losses, accs))]
    defaults = {"train_subset": None, "epochs": 30, "lr": 0.01, "results_dir": "results"}
    run = {"method": method, "status": "completed", "config": dict(defaults), "defaults": defaults, "epochs": epochs,
           "environment": {"python": "3", "torch": "2", "mpi": None, "cpus": 2, "device": "cpu"},
           "best": None}
    (folder / f"{method}.json").write_text(json.dumps(run))


@pytest.fixture
def results(tmp_path):
    write_run(tmp_path, "regular", [0.5, 0.3, 0.35], [0.80, 0.90, 0.91], seconds=1.0, sent=0)
    write_run(tmp_path, "split", [0.6, 0.4, 0.38, 0.39], [0.7, 0.85, 0.88, 0.87], seconds=3.0, sent=1000)
    (tmp_path / "federated.json").write_text('{"method": "federated", "epochs": [{"epo')  # cut off mid-write
    return tmp_path


def test_summary_numbers_match_the_fixture(results):
    runs, problems = load_results(results)
    assert set(runs) == {"regular", "split"}
    assert summarize(runs["regular"]) == {"best_acc": 0.91, "best_acc_epoch": 3, "min_loss": 0.3,
                                          "converged_epoch": 2, "epochs_run": 3, "mean_epoch_s": 1.0,
                                          "total_bytes": 0}
    assert summarize(runs["split"])["total_bytes"] == 4000
    assert summarize(runs["split"])["converged_epoch"] == 3
    table = summary_markdown(runs)
    assert "| Regular learning | 91.00% | 3 | 0.3000 | 2 | 3 | 1.0 | 0 | 88.8% / 10 / 19.0 s |" in table
    assert "| Split learning | 88.00% | 3 | 0.3800 | 3 | 4 | 3.0 | 4,000 | 88.0% / 10 / 26.2 s |" in table


def test_missing_and_corrupt_files_are_named_not_fatal(results):
    _, problems = load_results(results)
    assert any(p.startswith("corrupt:") and "federated.json" in p for p in problems)
    assert any(p.startswith("missing:") and "sync_sgd.json" in p for p in problems)


def test_script_writes_figures_and_table(results):
    result = script("plot_results.py", "--results-dir", str(results))
    assert result.returncode == 0, result.stderr
    assert "federated.json" in result.stderr and "Traceback" not in result.stderr
    for name in ("figure1.png", "comparison.png", "summary.md"):
        assert (results / name).stat().st_size > 1000 or name == "summary.md"
    assert (results / "figure1.png").read_bytes()[:4] == b"\x89PNG"


def test_the_runs_table_has_a_row_per_run_file(results):
    import csv
    study = results / "study"
    study.mkdir()
    write_run(study, "federated", [0.5, 0.45], [0.70, 0.75], sent=0)
    (study / "split-attack.json").write_text(json.dumps({"attacks": {}}))  # not a run: no row
    assert script("plot_results.py", "--results-dir", str(results)).returncode == 0
    with open(results / "runs.csv") as f:
        table = list(csv.DictReader(f))
    rows = {row["file"]: row for row in table}
    assert len(table) == 3 and set(rows) == {"regular.json", "split.json", "study/federated.json"}  # one cut off
    assert float(rows["split.json"]["best_test_acc"]) == 0.88 and rows["split.json"]["best_epoch"] == "3"
    assert rows["split.json"]["epochs"] == "4" and float(rows["split.json"]["mean_epoch_s"]) == 3.0
    assert float(rows["study/federated.json"]["best_test_acc"]) == 0.75


def test_no_results_is_a_clear_error(tmp_path):
    result = script("plot_results.py", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "error: no readable results" in result.stderr


def test_one_process_fedavg_counts_the_model_traffic_it_stands_for(tmp_path):
    write_run(tmp_path, "federated", [0.5, 0.4], [0.8, 0.85], sent=0)
    run = json.loads((tmp_path / "federated.json").read_text())
    for epoch in run["epochs"]:
        epoch.update(model_bytes_down=300, model_bytes_up=300)
    assert summarize(run)["total_bytes"] == 1200


def test_a_run_that_is_not_the_reports_experiment_is_marked(tmp_path):
    write_run(tmp_path, "regular", [0.5, 0.4], [0.8, 0.85])
    run = json.loads((tmp_path / "regular.json").read_text())
    run["config"] = {"train_subset": 3000, "epochs": 2, "lr": 0.01, "results_dir": "elsewhere"}
    (tmp_path / "regular.json").write_text(json.dumps(run))
    runs, _ = load_results(tmp_path)
    table = summary_markdown(runs)
    assert "| Regular learning * |" in table
    assert "not the report's experiment: --train-subset 3000, --epochs 2." in table  # not --lr, --results-dir


def write_study_run(folder, name, best_acc, class_acc):
    epochs = [{"epoch": 1, "test_loss": 1.0, "test_acc": best_acc - 0.1, "test_class_acc": [0.0] * 10},
              {"epoch": 2, "test_loss": 0.5, "test_acc": best_acc, "test_class_acc": class_acc}]
    (folder / f"{name}.json").write_text(json.dumps({"method": "x", "status": "completed", "epochs": epochs}))


def test_study_table_and_figure_from_fixture_results(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    for seed, acc in enumerate([0.80, 0.90, 0.85]):
        write_study_run(study, f"split-a0.1-s{seed}", acc, [acc] * 10)
        write_study_run(study, f"federated-iid-s{seed}", 0.5, [0.5] * 10)
    write_study_run(study, "federated-a0.1-s0", 0.7, [0.7] * 10)
    (study / "sflv2-iid-s0.json").write_text(json.dumps({"status": "running", "epochs": []}))  # unfinished: left out
    from splitlab.reports.study import load_study, study_markdown
    loaded = load_study(study)
    assert set(loaded) == {"split", "federated"}
    table = study_markdown(loaded)
    assert "| Split learning | 85.0% ± 5.0% (n=3) |  |" in table
    assert "| FedAvg | 70.0% ± 0.0% (n=1) | 50.0% ± 0.0% (n=3) |" in table
    result = script("plot_results.py", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "noniid.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Non-IID data" in (tmp_path / "summary.md").read_text()


def test_a_run_without_its_defaults_is_marked_as_unknown(tmp_path):
    write_run(tmp_path, "regular", [0.5, 0.4], [0.8, 0.85])
    run = json.loads((tmp_path / "regular.json").read_text())
    del run["defaults"]
    (tmp_path / "regular.json").write_text(json.dumps(run))
    runs, _ = load_results(tmp_path)
    assert "| Regular learning * |" in summary_markdown(runs)


def test_plotting_imports_no_training_code():
    # A plotting script reads results files only: no torch, no mpi4py, no training script.
    probe = "import sys, plot_results; print([m for m in ('torch', 'mpi4py', 'training') if m in sys.modules])"
    result = run([sys.executable, "-c", probe])
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_scale_and_label_tables_from_fixture_results(tmp_path):
    from splitlab.reports.labels import labels_markdown, load_labels
    from splitlab.reports.scale import load_scale, scale_markdown
    (tmp_path / "scale").mkdir()
    (tmp_path / "labels").mkdir()
    for k, acc, moved in ((10, 0.88, 612e6), (1000, 0.80, 614e6)):
        epochs = [{"epoch": 1, "test_acc": acc - 0.1, "epoch_time_s": 20.0, "bytes_sent": moved + 5e6},
                  {"epoch": 2, "test_acc": acc, "epoch_time_s": 22.0, "bytes_sent": moved}]
        run = {"status": "completed", "config": {"clients": k}, "shard_sizes": [1] * k, "epochs": epochs}
        (tmp_path / "scale" / f"split-iid-s0{'' if k == 10 else f'-k{k}'}.json").write_text(json.dumps(run))
    (tmp_path / "scale" / "split-iid-s0-k100.json").write_text('{"status": "running", "epo')  # cut off: skipped
    table = scale_markdown(load_scale(tmp_path / "scale"))
    assert "| Split learning | IID | 10 | 88.0% | 612.0 | 21.0 |" in table  # the last epoch's bytes, mean time
    assert "| Split learning | IID | 1,000 | 80.0% | 614.0 | 21.0 |" in table and "| 100 |" not in table
    for noise, direction, known in ((0.0, 0.97, 0.9), (0.01, 0.31, None)):  # None: a run from before the key
        scores = {"label_direction_acc": direction, **({"label_direction_acc_one_known": known} if known else {})}
        run = {"status": "completed", "config": {"grad_noise_std": noise},
               "epochs": [{"epoch": 1, "test_acc": 0.8, **scores, "label_norm_auc": 0.6}]}
        (tmp_path / "labels" / f"u-{noise}.json").write_text(json.dumps(run))
    table = labels_markdown(load_labels(tmp_path / "labels"))
    assert table.index("| 0 | 80.00% | 90.0% | 97.0% | 0.600 |") < table.index("| 0.01 | 80.00% | - | 31.0% | 0.600 |")


def test_what_a_data_holder_pays_averages_the_clients_that_trained_in_the_last_epoch(tmp_path):
    from splitlab.reports.work import load_work, work_markdown
    (tmp_path / "work" / "lenet5").mkdir(parents=True)
    def epoch(flops, cpu):  # client 3 was not sampled (FedAvg --fraction): it computed nothing
        return {"epoch": 1, "server_flops": 0, "server_cpu_s": 0.5, "client_flops": flops, "client_cpu_s": cpu,
                "client_bytes_sent": [1e6, 3e6, 0], "client_bytes_received": [1e6, 1e6, 0],
                "client_peak_rss_mb": [700, 800, 0]}
    run = {"status": "completed", "method": "federated", "config": {"model": "lenet5"},
           "epochs": [epoch([9e9, 9e9, 0], [9.0, 9.0, 0]), epoch([1e9, 3e9, 0], [1.0, 2.0, 0.0])]}
    (tmp_path / "work" / "lenet5" / "federated.json").write_text(json.dumps(run))
    (tmp_path / "work" / "lenet5" / "split.json").write_text('{"status": "running", "epo')  # cut off: skipped
    table = work_markdown(load_work(tmp_path / "work"))
    assert "| lenet5 | FedAvg | 2.00 | 1.5 | 3.0 | 800 | 0.00 | 0.5 |" in table
    assert table.count("| lenet5 |") == 1


def test_the_first_private_setting_keeps_accuracy_within_two_points_of_its_undefended_run():
    from splitlab.reports.privacy import first_private_setting
    def row(setting, cut, nopeek, noise, acc, ssim):
        return {"setting": setting, "model": "lenet5", "cut": cut, "clients": 2, "epochs": 3, "nopeek": nopeek,
                "noise_std": noise, "watched_acc": acc, "ssim_decoder": ssim}
    rows = [row("none", 1, 0, 0, 0.90, 0.88), row("noise2", 1, 0, 2, 0.85, 0.20),  # private, but 5 points lost
            row("nopeek8", 1, 8, 0, 0.89, 0.25), row("none", 2, 0, 0, 0.88, 0.50)]
    assert first_private_setting(rows)["setting"] == "nopeek8"
    assert first_private_setting(rows[:2] + rows[3:]) is None


def test_an_attack_no_better_than_its_baseline_reads_attack_failed(tmp_path):
    """In the privacy table, from the files privacy.py writes: a failed attack is marked, one with a baseline it
    beat is not, and one from before the baseline existed carries no mark."""
    from splitlab.reports.privacy import load_privacy, privacy_markdown
    run = {"config": {"model": "lenet5", "cut_layer": 1, "noise_std": 2.0}, "shard_sizes": [1, 1],
           "epochs": [{"test_acc": 0.8, "dcor2_bias_corrected": 0.1}]}
    attacks = {"white-box": {"ssim": 0.081, "classifier_accuracy": 0.1, "failed": True},
               "decoder": {"ssim": 0.41, "classifier_accuracy": 0.6, "failed": False}}
    for name, saved in (("lenet5-cut1-noise2", attacks), ("lenet5-cut2-noise2", {
            k: {key: value for key, value in v.items() if key != "failed"} for k, v in attacks.items()})):
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
        (tmp_path / f"{name}-attack.json").write_text(json.dumps({"attacks": saved}))
    table = privacy_markdown(load_privacy(tmp_path)).splitlines()
    marked, unmarked = (next(line for line in table if f"| {name} |" in line)
                        for name in ("lenet5-cut1-noise2", "lenet5-cut2-noise2"))
    assert "| 0.081 attack failed |" in marked and "| 0.410 |" in marked
    assert "attack failed" not in unmarked and "| 0.081 |" in unmarked


def write_split_attack(folder, name, noise, acc, attacks, settings=None, aux=5000):
    """A split run at cut 1 of lenet5 with 2 clients, and attack.py's file of its ``attacks`` with ``aux``
    auxiliary images, as privacy.py writes them."""
    run = {"config": {"model": "lenet5", "cut_layer": 1, "noise_std": noise, "epochs": 1},
           "shard_sizes": [1, 1], "server_received": [{"tag": "LABELS", "shape_per_example": []},
                                                      {"tag": "SMASHED", "shape_per_example": [6, 14, 14]}],
           "epochs": [{"test_acc": acc, "dcor2_bias_corrected": 0.1}]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(run))
    attack = {"attack_settings": {"aux": aux, **(settings or {})}, "attacks": attacks, "time_s": 600}
    (folder / f"{name}-aux{aux}-attack.json").write_text(json.dumps(attack))


def test_both_legs_side_by_side(tmp_path):
    """The legs table from the files privacy.py and attack_updates.py write: the split server's bytes are the
    victims' activations (100 images of 6x14x14 floats), a FedAvg row's its updates; of the defended split runs
    only the most noise within a point of the undefended run's accuracy; labels read, given or not recorded;
    failed attacks marked."""
    from splitlab.reports.privacy import legs_markdown, load_legs
    for name, noise, acc in (("lenet5-cut1-none", 0.0, 0.88), ("lenet5-cut1-noise0.3", 0.3, 0.876),
                             ("lenet5-cut1-noise0.5", 0.5, 0.875), ("lenet5-cut1-noise2", 2.0, 0.86)):
        write_split_attack(tmp_path, name, noise, acc, {
            "decoder": {"ssim": 0.85 - noise / 10, "classifier_accuracy": 0.87, "failed": False, "baseline_ssim": 0.2,
                        "recognisable": 0.97},
            "white-box": {"ssim": 0.61, "classifier_accuracy": 0.82}})
    attack = {"ssim": 0.07, "baseline_ssim": 0.08, "failed": True, "recognisable": 0.0, "classifier_accuracy": 0.1,
              "bytes_seen": 13 * 246824}
    (tmp_path / "lenet5-fedavg-updates-attack.json").write_text(json.dumps({"config": {
        "model": "lenet5", "clients": 2, "epochs": 1}, "rounds": {
        "first": {"test_acc": 0.1, "attacks": {"one step, B=8": {**attack, "labels_read_right": 0.97}}},
        "last": {"test_acc": 0.87, "attacks": {"one local epoch, batch 64": {**attack, "labels_read_right": None}}}}}))
    (tmp_path / "lenet5-fedavg-e5-b10-updates-attack.json").write_text(json.dumps({"config": {
        "model": "lenet5", "clients": 2, "epochs": 1, "local_epochs": 5, "batch_size": 10}, "rounds": {
        "last": {"test_acc": 0.89, "attacks": {"one step, B=1": {**attack, "labels_read_right": 0.9},
                                               "5 local epochs, batch 10": {**attack, "labels_read_right": None}}}}}))
    table = legs_markdown(load_legs(tmp_path)).splitlines()
    rows = [line for line in table if line.startswith("| lenet5 |")]
    assert len(rows) == 8  # the undefended run's two attacks, noise 0.5's two, the FedAvg files' two each
    # a run of another local training says so where its case does not (one step of its model)
    assert "| updates: one step, B=1 (a model of 5 local epochs, batch 10) |" in rows[4]
    assert "| updates: 5 local epochs, batch 10 |" in rows[5]
    assert rows[0].startswith("| lenet5 | 2 | 1 | split learning | cut-1 activations | 470,400 | decoder | last "
                              "| 0.850 (0.200) | 97% | 87% | - | 88.00% |")
    assert "| white-box | last | 0.610 (-) | - | 82% |" in rows[1]
    assert "| cut-1 activations, noise 0.5 on them | 470,400 | decoder | last | 0.800 (0.200) |" in rows[2]
    assert rows[6].startswith("| lenet5 | 2 | 1 | FedAvg | updates: one step, B=8 | 3,208,712 | gradient inversion "
                              "| first | 0.070 (0.080) attack failed | 0% | 10% | 97% | 10.00% |")
    assert "| last |" in rows[7] and "| given | 87.00% |" in rows[7]


def test_the_careful_attacker_stands_beside_the_grids_attack_of_the_same_setting(tmp_path):
    """careful/: the same settings trained again and attacked with budgets chosen on held-out images. In the legs
    table each follows the grid's row of its setting, naming the budget it chose; an attack that chose nothing
    (made before attack.py chose) and a setting the legs leave out are not shown. The careful table puts each beside
    the grid's attack of that setting."""
    from splitlab.reports.privacy import budget_markdown, careful_markdown, legs_markdown, load_careful, load_legs
    def scores(ssim, **choice):
        return {"ssim": ssim, "classifier_accuracy": 0.8, "failed": False, "baseline_ssim": 0.08,
                "recognisable": 0.9, **choice}
    for name, noise, acc in (("lenet5-cut1-none", 0.0, 0.88), ("lenet5-cut1-noise0.5", 0.5, 0.875)):
        write_split_attack(tmp_path, name, noise, acc, {"decoder": scores(0.8 - noise / 10),
                                                        "white-box": scores(0.6)})
    write_split_attack(tmp_path, "lenet5-cut1-none", 0.0, 0.88, {"decoder": scores(0.9), "white-box": scores(0.65)},
                       aux=10000)  # the careful table compares with the grid's attack with the most auxiliary images
    careful = tmp_path / "careful"
    offered = {"decoder_widths": [32, 128], "decoder_epochs": 40, "tv_weights": [0.1, 1.0], "inversion_steps": 3000}
    write_split_attack(careful, "lenet5-cut1-none", 0.0, 0.881, {
        "decoder": scores(0.89, decoder_width=128, decoder_epochs=38,
                          decoder_held_out_curve={"32": [0.5, 0.6, 0.7, 0.72], "128": [0.6, 0.8, 0.85, 0.86]}),
        "white-box": scores(0.78, inversion_tv_weight=0.3, inversion_steps=1700,
                            inversion_held_out_curve={"0.1": [0.1, 0.2, 0.3, 0.33, 0.3, 0.31]})}, offered)
    write_split_attack(careful, "lenet5-cut1-noise0.5", 0.5, 0.868, {  # its white-box from before the choice
        "decoder": scores(0.83, decoder_width=128, decoder_epochs=29), "white-box": scores(0.5)},
        {"decoder_widths": [32, 128], "decoder_epochs": 40, "tv_weight": 0.01, "inversion_steps": 600})
    write_split_attack(careful, "lenet5-cut1-nopeek2", 0.0, 0.86, {"decoder": scores(0.84, decoder_width=128,
                                                                                      decoder_epochs=38),
                                                                   "white-box": scores(0.2)}, offered)
    rows = [line.split(" | ")[6] for line in legs_markdown(load_legs(tmp_path)).splitlines()
            if line.startswith("| lenet5 |")]
    assert rows == ["decoder", "white-box", "careful decoder (width 128, 38 passes, chosen)",
                    "careful white-box (TV 0.3, 1,700 steps, chosen)", "decoder", "white-box",
                    "careful decoder (width 128, 29 passes, chosen)"]
    table = careful_markdown(load_careful(tmp_path))
    assert ("| lenet5 | 1 | lenet5-cut1-none | 88.10% (88.00%) | white-box | TV 0.1/1, up to 3,000 steps "
            "| TV 0.3, 1,700 steps | 0.780 (0.650) | 90% (90%) | 0.080 | 10 |") in table
    assert ("| lenet5 | 1 | lenet5-cut1-noise0.5 | 86.80% (87.50%) | white-box | TV 0.01, up to 600 steps | fixed "
            "| 0.500 (0.600) |") in table
    assert "| lenet5-cut1-nopeek2 | 86.00% (-) | decoder | width 32/128, up to 40 passes | width 128, 38 passes " \
           "| 0.840 (-) |" in table
    # how each attack grows with its budget: the first look, half the most budget, all of it
    budget = [line for line in budget_markdown(load_careful(tmp_path)).splitlines() if line.startswith("| lenet5 |")]
    assert budget == [
        "| lenet5 | 1 | lenet5-cut1-none | decoder | width 32 | 40 passes | 0.500 | 0.600 | 0.720 | +0.120 |",
        "| lenet5 | 1 | lenet5-cut1-none | decoder | width 128 | 40 passes | 0.600 | 0.800 | 0.860 | +0.060 |",
        "| lenet5 | 1 | lenet5-cut1-none | white-box | TV 0.1 | 3,000 steps | 0.100 | 0.300 | 0.310 | +0.010 |"]


def test_a_run_with_a_validation_set_is_reported_at_its_best_validation_epoch():
    from splitlab.reports.experiment import summarize
    epochs = [{"epoch": 1, "test_loss": 0.5, "test_acc": 0.90, "val_loss": 0.6, "val_acc": 0.80, "epoch_time_s": 1.0},
              {"epoch": 2, "test_loss": 0.6, "test_acc": 0.85, "val_loss": 0.4, "val_acc": 0.88, "epoch_time_s": 1.0}]
    chosen = summarize({"epochs": epochs})
    assert (chosen["best_acc"], chosen["best_acc_epoch"], chosen["min_loss"], chosen["converged_epoch"]) == \
        (0.85, 2, 0.6, 2)
    without = summarize({"epochs": [{k: v for k, v in e.items() if not k.startswith("val")} for e in epochs]})
    assert (without["best_acc"], without["best_acc_epoch"], without["converged_epoch"]) == (0.90, 1, 1)
