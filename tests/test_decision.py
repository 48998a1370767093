"""decision.py: the epoch-time model's bytes are traffic.py's, its compute and latency terms add up as stated, and
a method that did not reach the target never wins a cell it might lose."""

import json
import math
import sys

import numpy as np
import pytest
import torch

import decision as decision_script
from splitlab.costs import decision
from splitlab.costs.traffic import fedavg_round_bytes, split_epoch_bytes
from splitlab.errors import InputError
from splitlab.runs import label

COMPUTE = {"client_forward": 0.001, "client_backward": 0.002, "server": 0.004, "whole": 0.006}
FREE = (1e30, 0.0)  # a link that costs nothing


# Counted by hand, not by the code under test: (numbers an image sends at the cut, client part's parameters, the
# whole network's parameters). A 5x5 convolution from i to o channels has 25 i o + o parameters, a 3x3 one 9 i o + o.
BY_HAND = {
    ("lenet5", 1): (6 * 14 * 14, 25 * 6 + 6, 61706),  # conv1 1->6, padded: 28x28 pooled to 14x14
    ("lenet5", 2): (16 * 5 * 5, 156 + 25 * 6 * 16 + 16, 61706),  # + conv2 6->16
    ("lenet5-report", 1): (6 * 12 * 12, 156, 44426),  # unpadded: 24x24 pooled to 12x12
    ("vgg-small", 3): (64 * 3 * 3, (9 * 16 + 16) + (9 * 16 * 16 + 16) + (9 * 16 * 32 + 32) + (9 * 32 * 32 + 32)
                       + (9 * 32 * 64 + 64) + (9 * 64 * 64 + 64), 1722490),  # three blocks of two convolutions
}


@pytest.mark.parametrize("model,cut", list(BY_HAND))
@pytest.mark.parametrize("clients", [10, 1000])
def test_bytes_are_the_closed_forms(model, cut, clients):
    c, client_part, whole = BY_HAND[model, cut]
    link = (1e7, 0.01)
    _, vanilla = decision.epoch_seconds("vanilla", clients, link, COMPUTE, model, cut)
    _, sflv2 = decision.epoch_seconds("sflv2", clients, link, COMPUTE, model, cut)
    _, fedavg = decision.epoch_seconds("fedavg", clients, link, COMPUTE, model, cut)
    assert vanilla == split_epoch_bytes("vanilla", 60000, 0, clients, c)
    assert sflv2 == split_epoch_bytes("sflv2", 60000, 0, clients, c, p=client_part)
    assert fedavg == fedavg_round_bytes(clients, whole)
    _, tenth = decision.epoch_seconds("fedavg", clients, link, COMPUTE, model, cut, fraction=0.1)
    assert tenth == 2 * (clients // 10) * 4 * whole  # the model down to a tenth of the clients and back
    assert decision.parameter_bytes(model, cut) == (4 * client_part, 4 * whole)


def test_a_free_link_leaves_the_compute():
    batches = math.ceil(6000 / 64)  # 10 clients of 6,000 images
    step = COMPUTE["client_forward"] + COMPUTE["server"] + COMPUTE["client_backward"]
    vanilla, _ = decision.epoch_seconds("vanilla", 10, FREE, COMPUTE, "lenet5")
    sflv2, _ = decision.epoch_seconds("sflv2", 10, FREE, COMPUTE, "lenet5")
    fedavg, _ = decision.epoch_seconds("fedavg", 10, FREE, COMPUTE, "lenet5", local_epochs=2)
    assert vanilla == pytest.approx(10 * batches * step)
    assert sflv2 == pytest.approx(max(10 * batches * COMPUTE["server"], batches * step))
    assert fedavg == pytest.approx(2 * batches * COMPUTE["whole"])


def test_latency_and_bandwidth_terms():
    """Vanilla pays two latencies a batch and two a turn, and its bytes once at the bandwidth; FedAvg's server
    sends K models at once and takes K back: 2K transfers on its link, and two latencies."""
    bits, latency = 1e7, 0.02
    batches = 10 * math.ceil(6000 / 64)
    free, _ = decision.epoch_seconds("vanilla", 10, FREE, COMPUTE, "lenet5")
    slow, moved = decision.epoch_seconds("vanilla", 10, (bits, latency), COMPUTE, "lenet5")
    assert slow - free == pytest.approx((2 * batches + 2 * 10) * latency + moved * 8 / bits)
    free, _ = decision.epoch_seconds("fedavg", 10, FREE, COMPUTE, "lenet5")
    slow, moved = decision.epoch_seconds("fedavg", 10, (bits, latency), COMPUTE, "lenet5")
    assert slow - free == pytest.approx(2 * latency + 2 * 10 * 4 * BY_HAND["lenet5", 1][2] * 8 / bits)


def test_splitfed_v2_time_counted_by_hand():
    """10 clients of lenet5 cut 1 at 100 Mbit/s; each step 7 ms (server 4 ms). 60,000 images send 4 x 1,176 floats
    and an 8-byte label each (282,720,000 bytes; gradients 282,240,000), 94 batches a client, 940 in all; the
    client part is 156 parameters (624 bytes) and crosses the server's link 10 times each way."""
    # 5 ms latency: the server's link in decides, 282,720,000 x 8 / 1e8 = 22.6176 s (the server's steps take
    # 3.76 s, one client's chain 94 x 17 ms + 4.51968 s = 6.11768 s), then the averaging 2 x (0.0004992 + 0.005) s
    seconds, _ = decision.epoch_seconds("sflv2", 10, (1e8, 0.005), COMPUTE, "lenet5", 1)
    assert seconds == pytest.approx(22.6176 + 0.0109984)
    # 0.5 s latency: one client's chain decides, 94 x (7 ms + 1 s) + 4.51968 s = 99.17768 s, averaging 1.0009984 s
    seconds, _ = decision.epoch_seconds("sflv2", 10, (1e8, 0.5), COMPUTE, "lenet5", 1)
    assert seconds == pytest.approx(99.17768 + 1.0009984)


def test_skewed_shards_make_splitfed_v2_and_fedavg_wait_for_the_largest():
    """10 clients of lenet5 cut 1, the largest shard twice the mean: 12,000 images, 188 batches (IID: 94)."""
    seconds, _ = decision.epoch_seconds("fedavg", 10, FREE, COMPUTE, "lenet5", 1, skew=2.0)
    assert seconds == pytest.approx(188 * 0.006)  # the largest client's local epoch of whole-network steps
    # SplitFed V2 at 100 Mbit/s and 0.5 s latency: the largest client's chain, 188 x (7 ms + 1 s) + its 2 x
    # 4.51968 s of activations and gradients, then the averaging 1.0009984 s (as counted for IID shards above)
    seconds, _ = decision.epoch_seconds("sflv2", 10, (1e8, 0.5), COMPUTE, "lenet5", 1, skew=2.0)
    assert seconds == pytest.approx(188 * 1.007 + 2 * 4.51968 + 1.0009984)
    # vanilla split learning's clients take turns: every batch is on the path whatever the shards
    assert decision.epoch_seconds("vanilla", 10, (1e8, 0.5), COMPUTE, "lenet5", 1, skew=2.0) == \
        decision.epoch_seconds("vanilla", 10, (1e8, 0.5), COMPUTE, "lenet5", 1)


def test_the_map_reads_the_skew_of_the_shards_each_run_had_and_its_partition(tmp_path):
    skewed = _run("federated", [0.85], 10)
    skewed["shard_sizes"] = [1200, 600, 600, 600, 600, 600, 600, 600, 600, 0]  # the largest twice the mean
    (tmp_path / "federated-a0.5-s0.json").write_text(json.dumps(skewed))
    (tmp_path / "federated-iid-s0.json").write_text(json.dumps(_run("federated", [0.7, 0.85], 10)))
    runs = decision.load_runs([tmp_path], "0.5")
    assert [run["shard_sizes"] for run in runs["lenet5"]["federated"][10]] == [skewed["shard_sizes"]]
    _, seconds = decision.decide(runs["lenet5"], {1: COMPUTE}, "lenet5", 0.8, 0.0, np.array([10]), np.array([1e30]))
    assert seconds["federated"][0, 0, 1] == pytest.approx(188 * 0.006)  # one round, the largest client's
    assert len(decision.load_runs([tmp_path])["lenet5"]["federated"][10][0]["epochs"]) == 2  # IID: the other


def test_a_method_without_a_time_model_is_named():
    with pytest.raises(ValueError, match="no time model for 'sflv1'"):
        decision.epoch_seconds("sflv1", 10, FREE, COMPUTE, "lenet5")


def _run(method, accuracies, clients, variant="vanilla"):
    return {"method": method, "status": "completed",
            "config": {"variant": variant, "cut_layer": 1, "batch_size": 64, "model": "lenet5", "clients": clients},
            "epochs": [{"epoch": i + 1, "test_acc": a} for i, a in enumerate(accuracies)]}


def test_epochs_to_the_target():
    assert decision.epochs_to(_run("split", [0.7, 0.82, 0.85], 10), 0.8) == (2, True)
    assert decision.epochs_to(_run("split", [0.7, 0.75], 10), 0.8) == (2, False)


def test_epochs_to_the_target_within_an_epoch_read_the_first_evaluation_past_it():
    run = _run("split", [0.78, 0.86], 10)
    run["epochs"][0]["val_acc"], run["epochs"][1]["val_acc"] = 0.78, 0.85
    run["epochs"][0]["within_epoch"] = [{"fraction": f, "val_acc": a} for f, a in ((0.5, 0.7), (0.9, 0.79))]
    run["epochs"][1]["within_epoch"] = [{"fraction": f, "val_acc": a} for f, a in ((0.25, 0.79), (0.75, 0.81))]
    assert decision.epochs_to(run, 0.8) == (1.75, True)  # 3/4 into epoch 2: past 0.8 before the epoch's end
    assert decision.epochs_to(run, 0.85) == (2, True)  # only at the epoch's end
    assert decision.epochs_to(run, 0.7) == (0.5, True)
    assert decision.epochs_to(run, 0.9) == (2, False)
    run["epochs"][1]["within_epoch"][1]["test_acc"] = 0.99  # a test accuracy never chooses when there is validation
    assert decision.epochs_to(run, 0.82) == (2, True)


def test_epochs_between_measured_clients_are_interpolated_in_log_clients():
    measured = {10: ((1, 1, 2), (True, True)), 1000: ((3, 4, 6), (True, True))}
    assert decision.interpolated(measured, 100) == ((pytest.approx(2), pytest.approx(2.5), 4), (True, True))
    assert decision.interpolated(measured, 10) == ((1, 1, 2), (True, True))
    short = {10: ((1, 1, 2), (True, True)), 1000: ((3, 4, 6), (True, False))}  # a seed short at 1,000 clients
    assert decision.interpolated(short, 100)[1] == (True, False)
    assert decision.interpolated(measured, 2000) is None  # not measured so far out: takes no part


def test_a_method_short_of_the_target_wins_nothing_and_may_leave_cells_undecided():
    """FedAvg reaches the target only with 10 clients: there it may win; with 10,000 it cannot, and a cell is
    undecided where its lower bound (the rounds it ran) is below split learning's time."""
    runs = {"split": {10: [_run("split", [0.85], 10)], 10000: [_run("split", [0.85], 10000)]},
            "federated": {10: [_run("federated", [0.85], 10)], 10000: [_run("federated", [0.2], 10000)]}}
    clients, bandwidths = np.array([10, 10000]), np.array([1e6, 1e10])
    winner, seconds = decision.decide(runs, {1: COMPUTE}, "lenet5", 0.8, 0.01, clients, bandwidths)
    for i, k in enumerate(clients):
        for j in range(len(bandwidths)):
            split_time, fedavg_time = seconds["split"][i, j, 1], seconds["federated"][i, j, 1]
            if k == 10:
                assert winner[i, j] == ("split" if split_time < fedavg_time else "federated")
            else:
                assert winner[i, j] == ("" if fedavg_time < split_time else "split")
    assert set(winner[1]) == {"", "split"}  # both occur: a slow link favours split learning at 10,000


MACHINE = {"processor": "a made-up CPU @ 2 GHz", "cpus": 2, "host": "here", "torch": "2.14.1", "date": "2026-12-03"}


def role_times_file(path, compute_by_cut, model="lenet5"):
    """A role-times file (decision.py --time-roles) holding ``compute_by_cut`` ({cut: {role: seconds}}) as the
    least of each role's times."""
    times = {model: {str(cut): {role: {"least": s, "median": 2 * s, "most": 3 * s} for role, s in compute.items()}
                     for cut, compute in compute_by_cut.items()}}
    path.write_text(json.dumps({"machine": MACHINE, "batch": 64, "repeats": 20, "times": times}))
    return str(path)


def test_the_map_from_results_files(tmp_path, monkeypatch):
    for name, k, accs, method, variant in [("split-iid-s0", 10, [0.85], "split", "vanilla"),
                                           ("split-iid-s0-k1000", 1000, [0.84], "split", "vanilla"),
                                           ("sflv2-iid-s0-k1000", 1000, [0.7, 0.81], "split", "sflv2"),
                                           ("federated-iid-s0", 10, [0.81], "federated", None)]:
        (tmp_path / f"{name}.json").write_text(json.dumps(_run(method, accs, k, variant)))
    (tmp_path / "split-a0.5-s0.json").write_text(json.dumps(_run("split", [0.9], 10)))  # not IID: left out
    longer = tmp_path / "longer"
    longer.mkdir()
    (longer / "federated-iid-s0.json").write_text(json.dumps(_run("federated", [0.7, 0.75, 0.81], 10)))
    subset = _run("split", [0.9, 0.9, 0.9, 0.9], 10, "sflv2")
    subset["config"]["train_subset"] = 600  # a run on part of the data: left out
    (longer / "sflv2-iid-s0.json").write_text(json.dumps(subset))
    runs = decision.load_runs([tmp_path, longer])
    assert len(runs["lenet5"]["federated"][10][0]["epochs"]) == 3  # of two runs, the longer
    assert {name: sorted(by_k) for name, by_k in runs["lenet5"].items()} == {"split": [10, 1000], "sflv2": [1000],
                                                                             "federated": [10]}
    winner, seconds = decision.decide(runs["lenet5"], {1: COMPUTE}, "lenet5", 0.8, 0.01, np.array([10, 1000]),
                                      np.array([1e6, 1e9]))
    assert np.isnan(seconds["sflv2"][0]).all() and not np.isnan(seconds["sflv2"][1]).any()  # run with 1,000 only
    assert "sflv2" not in winner[0]
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--out", str(tmp_path / "decision.png"),
                                      "--role-times", role_times_file(tmp_path / "times.json", {1: COMPUTE})])
    decision_script.main()
    assert (tmp_path / "decision.png").stat().st_size > 10_000
    tables = (tmp_path / "decision.md").read_text()
    assert "a made-up CPU @ 2 GHz (2 CPUs, host here, torch 2.14.1, 2026-12-03" in tables
    assert "Settings: FedAvg: batch 64, lr 0.01, 1 local epoch(s), 100% of the clients a round; SplitFed V2: batch " \
        "64, lr 0.01; Split learning: batch 64, lr 0.01." in tables
    assert "on IID shards" in tables
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--partition", "0.50", "--out",
                                      str(tmp_path / "non-iid.png"), "--role-times", str(tmp_path / "times.json")])
    decision_script.main()  # the one non-IID run, split-a0.5-s0
    tables = (tmp_path / "non-iid.md").read_text()
    assert "on Dirichlet 0.5 shards" in tables and "| 10 | Split learning 1 |" in tables


def test_the_same_runs_drawn_twice_give_the_same_tables_and_picture(tmp_path, monkeypatch):
    """The map reads the committed batch times (decision.py --time-roles wrote them), not times taken anew."""
    for name, k, accs, variant in [("split-iid-s0", 10, [0.85], "vanilla"), ("sflv2-iid-s0-k100", 100, [0.81], "sflv2"),
                                   ("split-iid-s0-k100", 100, [0.7, 0.84], "vanilla")]:
        (tmp_path / f"{name}.json").write_text(json.dumps(_run("split", accs, k, variant)))
    times = role_times_file(tmp_path / "times.json", {1: COMPUTE})
    for out in ("first", "second"):
        monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--role-times", times,
                                          "--out", str(tmp_path / f"{out}.png")])
        decision_script.main()
    assert (tmp_path / "first.md").read_bytes() == (tmp_path / "second.md").read_bytes()
    assert (tmp_path / "first.png").read_bytes() == (tmp_path / "second.png").read_bytes()


def test_timing_the_roles_writes_each_roles_spread_and_the_machine(tmp_path):
    decision.time_roles(tmp_path / "times.json", [("lenet5", 2)], repeats=3)
    saved = json.loads((tmp_path / "times.json").read_text())
    assert set(saved["machine"]) == {"processor", "cpus", "host", "torch", "date"} and saved["repeats"] == 3
    spreads = saved["times"]["lenet5"]["2"]
    assert set(spreads) == {"client_forward", "client_backward", "server", "whole"}
    assert all(0 < s["least"] <= s["median"] <= s["most"] for s in spreads.values())
    compute, machine = decision.read_role_times(tmp_path / "times.json", "lenet5", {2})
    assert compute == {2: {**{role: s["least"] for role, s in spreads.items()}, "batch": 64}}
    assert machine == saved["machine"]


def test_each_cell_is_timed_with_its_runs_own_settings():
    """A run's batch size and local epochs go into its time, a run without a cut is cut after block 1 (or
    without local epochs, does one); a number of clients outside the measured range leaves only its own row
    empty; a method not at the target whose bound equals the winner's time does not make the cell undecided."""
    clients, bandwidths = np.array([1, 10]), np.array([1e7])

    def seconds_of(run):
        seconds = decision.decide({"m": {10: [run]}}, {1: COMPUTE}, "lenet5", 0.8, 0.01, clients, bandwidths)[1]
        return seconds["m"][..., 1]  # the median seed's

    plain = _run("federated", [0.85], 10)
    del plain["config"]["cut_layer"]
    base = seconds_of(plain)
    assert np.isnan(base[0, 0]) and base[1, 0] == pytest.approx(
        decision.epoch_seconds("fedavg", 10, (1e7, 0.01), COMPUTE, "lenet5", 1)[0])
    five = _run("federated", [0.85], 10)
    five["config"]["local_epochs"] = 5  # 4 more passes over a shard of 6,000: 4 x 94 whole-network steps
    assert seconds_of(five)[1, 0] - base[1, 0] == pytest.approx(4 * 94 * COMPUTE["whole"])
    tenth = _run("federated", [0.85], 10)
    tenth["config"]["fraction"] = 0.1  # one client a round: 18 models fewer on the server's link (20 -> 2)
    assert base[1, 0] - seconds_of(tenth)[1, 0] == pytest.approx(18 * 4 * BY_HAND["lenet5", 1][2] * 8 / 1e7)
    halves = _run("split", [0.85], 10)
    halves["config"]["batch_size"] = 32
    assert seconds_of(halves)[1, 0] > seconds_of(_run("split", [0.85], 10))[1, 0]
    tie = {"reached": {10: [_run("split", [0.85], 10)]}, "short": {10: [_run("split", [0.5], 10)]}}
    winner, _ = decision.decide(tie, {1: COMPUTE}, "lenet5", 0.8, 0.01, np.array([10]), bandwidths)
    assert winner[0, 0] == "reached"


def test_which_runs_the_map_reads(tmp_path):
    """Runs are grouped by their model (lenet5 where a file names none); a run left out does not end the reading
    of its folder; of two runs of one name with as many epochs, the first folder's is kept."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    short = _run("federated", [0.9], 10)
    short["config"]["train_subset"] = 600  # left out; its name sorts before the others'
    (first / "a-federated-iid-s0.json").write_text(json.dumps(short))
    report = _run("split", [0.81], 10)
    report["config"]["model"] = "lenet5-report"
    (first / "split-iid-s0.json").write_text(json.dumps(report))
    unnamed = _run("federated", [0.5, 0.6], 10)
    del unnamed["config"]["model"]
    (first / "federated-iid-s0.json").write_text(json.dumps(unnamed))
    (second / "federated-iid-s0.json").write_text(json.dumps(_run("federated", [0.7, 0.8], 10)))
    runs = decision.load_runs([first, second])
    assert runs["lenet5-report"]["split"][10][0]["epochs"][0]["test_acc"] == 0.81
    assert [e["test_acc"] for e in runs["lenet5"]["federated"][10][0]["epochs"]] == [0.5, 0.6]  # a tie: the first


def test_the_time_model_of_each_method():
    assert decision.formula({"method": "federated", "config": {}}) == "fedavg"
    assert decision.formula(_run("split", [], 10, "sflv2")) == "sflv2"
    assert decision.formula(_run("split", [], 10, "sflv1")) is None
    assert decision.formula({"method": "sync_sgd", "config": {"variant": "vanilla"}}) is None


def test_a_target_reached_exactly_is_reached():
    assert decision.epochs_to(_run("split", [0.7, 0.8, 0.9], 10), 0.8) == (2, True)


def test_the_tables_name_the_winner_of_every_cell_that_the_model_chooses(tmp_path, monkeypatch):
    """decision.md, read back: each cell's bold method is the model's winner there, among them SplitFed V2 (run
    with 1,000 clients only) and split learning at cut 2 (a compute time of its own)."""
    runs = [("split-iid-s0", 10, [0.85], "split", "vanilla", 1), ("split-iid-s0-k1000", 1000, [0.7, 0.84], "split",
            "vanilla", 1), ("split-cut2-iid-s0-k1000", 1000, [0.81], "split", "vanilla", 2),
            ("sflv2-iid-s0-k1000", 1000, [0.81], "split", "sflv2", 1),
            ("federated-iid-s0", 10, [0.81], "federated", None, 1), ("federated-iid-s0-k1000", 1000, [0.3] * 30,
                                                                    "federated", None, 1)]
    for name, k, accs, method, variant, cut in runs:
        run = _run(method, accs, k, variant)
        run["config"]["cut_layer"] = cut
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    compute = {1: COMPUTE, 2: {**COMPUTE, "server": 0.002, "client_forward": 0.002}}
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--out", str(tmp_path / "d.png"),
                                      "--role-times", role_times_file(tmp_path / "times.json", compute)])
    decision_script.main()
    rows = [line.split(" | ") for line in (tmp_path / "d.md").read_text().splitlines() if line.startswith("| 1")]
    assert [row[0] for row in rows] == ["| 10", "| 1,000"]
    by_name = decision.load_runs([tmp_path])["lenet5"]
    winner, _ = decision.decide(by_name, compute, "lenet5", 0.8, 0.01, np.array([10, 1000]),
                                np.array([1e6, 1e7, 1e8, 1e9, 1e10]))
    written = [[cell.split("**")[1] if "**" in cell else cell.strip(" |") for cell in row[2:]] for row in rows]
    assert written == [[label(name) if name else "undecided" for name in cells] for cells in winner]
    assert {"SplitFed V2", "Split learning, cut 2"} <= set(written[1])


@pytest.mark.parametrize("flags,named", [(["--target", "80"], "--target"), (["--latency", "fast"], "'fast'"),
                                         (["--runs", "/nonexistent"], "/nonexistent"),
                                         (["--role-times", "/nonexistent.json"], "--time-roles --role-times "
                                          "/nonexistent.json")])
def test_bad_input_is_an_error_naming_it_and_status_2(flags, named, tmp_path, monkeypatch, capsys):
    (tmp_path / "split-iid-s0.json").write_text(json.dumps(_run("split", [0.85], 10)))
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), *flags])  # a later --runs wins
    with pytest.raises(SystemExit) as exit_:
        decision_script.main()
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and named in last


def test_the_roles_are_timed_on_the_code_that_trains_each_interval_to_its_role(monkeypatch):
    """role_seconds times the split steps that training runs (at the cut's shape) and keeps the least of each
    role's intervals after the two warm-up rounds: with a clock whose intervals are known, the result is known."""
    repeats, stamps, now = 3, [], 0.0
    for i in range(repeats + 2):  # per round: client forward, server, client backward, whole; warm-ups shortest
        for interval in ((1e-3,) * 4 if i < 2 else (1 + i, 10 + i, 100 + i, 1000 + i)):
            stamps.append(now)
            now += interval
        stamps.append(now)
        now += 5  # between rounds
    clock = iter(stamps)
    monkeypatch.setattr(decision.time, "perf_counter", lambda: next(clock))
    shapes = []
    real_step = decision.server_step
    monkeypatch.setattr(decision, "server_step", lambda part, opt, smashed, labels: shapes.append(
        tuple(smashed.shape)) or real_step(part, opt, smashed, labels))
    threads = torch.get_num_threads()
    assert decision.role_seconds("lenet5", 2, batch=8, repeats=repeats) == {
        role: pytest.approx({"least": least, "median": least + 1, "most": least + 2})
        for role, least in {"client_forward": 3, "server": 12, "client_backward": 102, "whole": 1002}.items()}
    assert shapes == [(8, 16, 5, 5)] * (repeats + 2) and torch.get_num_threads() == threads


def test_time_to_target_reads_the_validation_accuracy_where_a_run_has_one():
    run = {"epochs": [{"epoch": 1, "test_acc": 0.81, "val_acc": 0.78}, {"epoch": 2, "test_acc": 0.79, "val_acc": 0.8}]}
    assert decision.epochs_to(run, 0.8) == (2, True)
    assert decision.epochs_to({"epochs": [{k: v for k, v in e.items() if k != "val_acc"} for e in run["epochs"]]},
                              0.8) == (1, True)


def test_seeds_give_the_median_and_a_cell_is_decided_only_past_the_runner_ups_fastest_seed(tmp_path, monkeypatch):
    """Three seeds a method (the same time an epoch): time to the target is the median seed's; where the winner's
    slowest seed is not faster than the runner-up's fastest, the cell is a tie naming both, and the tables say so."""
    epochs = {"a": [1, 5, 2], "b": [3, 3, 3], "c": [1, 2, 1]}  # a: median 2, slowest 5; c: slowest 2 < b's 3
    for name, seeds in epochs.items():
        for seed, count in enumerate(seeds):
            run = _run("split", [0.5] * (count - 1) + [0.85], 10)
            run["config"]["seed"] = seed
            (tmp_path / f"{name}-iid-s{seed}.json").write_text(json.dumps(run))
    runs = decision.load_runs([tmp_path])["lenet5"]
    assert [len(runs[name][10]) for name in epochs] == [3, 3, 3]
    per_epoch = decision.epoch_seconds("vanilla", 10, (1e6, 0.01), COMPUTE, "lenet5")[0]
    winner, seconds = decision.decide({n: runs[n] for n in "ab"}, {1: COMPUTE}, "lenet5", 0.8, 0.01, np.array([10]),
                                      np.array([1e6]))
    assert seconds["a"][0, 0] == pytest.approx([per_epoch, 2 * per_epoch, 5 * per_epoch])
    assert winner[0, 0] == ("a", "b")
    winner, _ = decision.decide({n: runs[n] for n in "bc"}, {1: COMPUTE}, "lenet5", 0.8, 0.01, np.array([10]),
                                np.array([1e6]))
    assert winner[0, 0] == "c"
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--out", str(tmp_path / "d.png"),
                                      "--role-times", role_times_file(tmp_path / "times.json", {1: COMPUTE})])
    decision_script.main()
    row = next(line for line in (tmp_path / "d.md").read_text().splitlines() if line.startswith("| 10 |"))
    assert "a 2 [1-5], b 3, c 1 [1-2]" in row  # the median epochs, and their range where seeds differ
    assert row.count("tie: c ") == 5 and "**" not in row  # all three: c's slowest seed is no faster than a's fastest


def test_a_seed_short_of_the_target_leaves_the_median_of_the_others_but_no_sure_win(tmp_path):
    """As FedAvg's seeds at 100 holders in make decision: two reach the target (in 2 and 3 rounds), one does not in
    its 4. The method takes part with its median (3, a seed that reached it); its slowest is only a lower bound,
    so where it is fastest the cell is a tie, not a win; with only one seed of three there, it is short of the
    target and wins nothing."""
    def seeds(counts):
        return [_run("federated", [0.5] * (n - 1) + [0.85] if n else [0.5] * 4, 10) for n in counts]
    assert decision.epochs_over_seeds(seeds([2, 3, 0]), 0.8) == ((2, 3, 4), (True, False))
    assert decision.epochs_over_seeds(seeds([2, 0, 0]), 0.8) == ((2, 4, 4), (False, False))
    assert decision.epochs_over_seeds(seeds([2, 3, 0, 5]), 0.8) == ((2, 4, 4), (True, False))  # even: the middle two
    slow = {10: [_run("split", [0.5] * 9 + [0.85], 10)]}  # 10 epochs: slower than 3 rounds on a fast link
    clients, fast_link = np.array([10]), np.array([1e10])
    winner, seconds = decision.decide({"federated": {10: seeds([2, 3, 0])}, "split": slow}, {1: COMPUTE}, "lenet5",
                                      0.8, 0.01, clients, fast_link)
    assert seconds["federated"][0, 0, 1] < seconds["split"][0, 0, 1]  # the median seed's time is the least
    assert winner[0, 0] == ("federated", "split")
    winner, _ = decision.decide({"federated": {10: seeds([2, 0, 0])}, "split": slow}, {1: COMPUTE}, "lenet5", 0.8,
                                0.01, clients, fast_link)
    assert winner[0, 0] == ""  # short of the target, and perhaps faster: undecided


def test_the_notes_state_each_methods_own_settings():
    from splitlab.reports.decision import settings
    tuned = _run("federated", [0.85], 100)
    tuned["config"].update(batch_size=10, lr=0.05, local_epochs=5, fraction=0.1)
    split, sflv2 = _run("split", [0.85], 100), _run("sflv2", [0.85], 100)
    split["config"]["evals_per_epoch"] = 10
    assert settings({"federated": {100: [tuned]}, "split": {100: [split]}, "sflv2": {100: [sflv2]}}) == \
        ("FedAvg: batch 10, lr 0.05, 5 local epoch(s), 10% of the clients a round; Split learning: batch 64, lr 0.01, "
         "evaluated 10 times an epoch; SplitFed V2: batch 64, lr 0.01")


def test_each_method_takes_its_best_setting_in_each_cell():
    """FedAvg with 10 clients of lenet5 (246,824-byte models, 94 batches of 6 ms a local epoch): every client a
    round reaching 80 % in 2 rounds, or a tenth of them in 6. At 1 Mbit/s a round of all moves 20 models (39.49 s)
    and one of a tenth 2 (3.949 s): 2 x 40.054 s against 6 x 4.513 s; on a free link 2 x 0.564 s against 6 x."""
    every, tenth = _run("federated", [0.7, 0.85], 10), _run("federated", [0.5, 0.6, 0.7, 0.75, 0.79, 0.81], 10)
    tenth["config"]["fraction"] = 0.1
    seconds, reached, chosen = decision.at_best({10: [every, tenth]}, {1: COMPUTE}, "lenet5", 0.8, 0.0,
                                                np.array([10]), np.array([1e6, 1e30]))
    assert list(chosen[0]) == [decision.setting(tenth), decision.setting(every)]
    assert seconds[0, :, 1] == pytest.approx([6 * (2 * 246824 * 8 / 1e6 + 0.564), 2 * 0.564])
    assert reached[0].all()
    # a rival of 40.6 s (half the clients a round: 2 x (19.747 + 0.564) s) loses to FedAvg at its best only
    rival = _run("federated", [0.7, 0.85], 10)
    rival["config"]["fraction"] = 0.5
    for settings, first in (([every, tenth], "federated"), ([every], "rival")):
        winner, _ = decision.decide({"federated": {10: settings}, "rival": {10: [rival]}}, {1: COMPUTE}, "lenet5",
                                    0.8, 0.0, np.array([10]), np.array([1e6]))
        assert winner[0, 0] == first


def test_settings_are_compared_on_the_seeds_they_share_and_the_chosen_one_timed_over_all_its_own():
    """make decision-trials runs every setting with seed 0, then the chosen ones with seeds 1 and 2 too. Here
    batch 64 reaches the target in 2 epochs with seed 0 and in 6 with seeds 1 and 2; batch 32, run with seed 0
    alone, in 3. On seed 0, which both have, batch 64 is chosen, and its time is then its median seed's, 6 epochs:
    the later seeds neither changed the choice nor were left out of the time."""
    def seeded(epochs, seed, batch):
        run = _run("split", [0.5] * (epochs - 1) + [0.85], 10)
        run["config"].update(seed=seed, batch_size=batch)
        return run
    runs = {10: [seeded(2, 0, 64), seeded(6, 1, 64), seeded(6, 2, 64), seeded(3, 0, 32)]}
    compute = {1: COMPUTE, (1, 32): COMPUTE}
    seconds, reached, chosen = decision.at_best(runs, compute, "lenet5", 0.8, 0.0, np.array([10]), np.array([1e30]))
    per_epoch = decision.epoch_seconds("vanilla", 10, FREE, COMPUTE, "lenet5")[0]
    assert chosen[0, 0] == "batch 64, lr 0.01"
    assert seconds[0, 0] == pytest.approx([2 * per_epoch, 6 * per_epoch, 6 * per_epoch])
    runs[10] = [seeded(2, 1, 64), seeded(3, 0, 32)]  # no seed in common: nothing to compare them on
    with pytest.raises(InputError, match="share no seed"):
        decision.at_best(runs, compute, "lenet5", 0.8, 0.0, np.array([10]), np.array([1e30]))


def test_the_settings_chosen_somewhere_and_short_of_seeds_are_listed_for_make(tmp_path, monkeypatch, capsys):
    """make decision-trials runs more seeds of what decision.py --missing-seeds lists: FedAvg with every client (3
    seeds) and a tenth of them (seed 0) are each chosen in some cell (test above), half of them in none."""
    for folder, fraction, seeds, rounds in (("every", 1.0, 3, 2), ("tenth", 0.1, 1, 6), ("half", 0.5, 1, 20)):
        (tmp_path / folder).mkdir()
        for seed in range(seeds):
            run = _run("federated", [0.5] * (rounds - 1) + [0.85], 10)
            run["config"].update(fraction=fraction, seed=seed)
            (tmp_path / folder / f"federated-iid-s{seed}.json").write_text(json.dumps(run))
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path / "*"), "--missing-seeds", "0,1,2",
                                      "--role-times", role_times_file(tmp_path / "times.json", {1: COMPUTE})])
    decision_script.main()
    assert capsys.readouterr().out == "lenet5 federated 1:64:0.1\n"
    assert not list(tmp_path.glob("*.png"))  # nothing drawn


def test_the_tables_name_the_setting_each_cell_chose(tmp_path):
    from splitlab.reports.decision import markdown
    every, tenth = _run("federated", [0.7, 0.85], 10), _run("federated", [0.5, 0.6, 0.7, 0.75, 0.79, 0.81], 10)
    tenth["config"]["fraction"] = 0.1
    table = markdown("lenet5", {"federated": {10: [every, tenth]}}, {1: COMPUTE}, 0.8, 0.0, bandwidths=(1e6, 1e30))
    assert "| 10 | FedAvg [a] 6, FedAvg [b] 2 | **FedAvg [a]** 27 s | **FedAvg [b]** 1 s |" in table
    assert ("FedAvg: [a] batch 64, lr 0.01, 1 local epoch(s), 10% of the clients a round [b] batch 64, lr 0.01, "
            "1 local epoch(s), 100% of the clients a round") in table


def test_of_two_runs_of_one_seed_the_one_on_validation_evaluated_within_epochs_is_read(tmp_path):
    """make scale's run (whole epochs, the test set) and make decision's of the same name and setting: the map
    reads make decision's, though it ran fewer epochs; of two alike, the longer."""
    scale, decided = _run("split", [0.85] * 5, 10), _run("split", [0.85] * 3, 10)
    decided["config"].update(validation=5000, evals_per_epoch=10)

    def read(order):
        for folder, run in (("scale", scale), ("decision", decided)):
            (tmp_path / folder).mkdir(exist_ok=True)
            (tmp_path / folder / "split-iid-s0.json").write_text(json.dumps(run))
        return decision.load_runs([tmp_path / folder for folder in order])["lenet5"]["split"][10]

    assert read(["scale", "decision"]) == read(["decision", "scale"]) == [decided]
    scale["config"]["validation"] = 5000
    assert read(["scale", "decision"]) == [decided]  # both on validation: evaluated within epochs
    decided["config"]["evals_per_epoch"] = 1
    assert read(["decision", "scale"]) == [scale]  # both once an epoch: the longer


def test_a_batch_size_the_roles_were_not_timed_at_is_refused():
    small = _run("federated", [0.85], 10)
    small["config"]["batch_size"] = 10
    with pytest.raises(InputError, match="federated runs with batch 10, but the roles' batches were timed at batch 64"):
        decision.decide({"federated": {10: [small]}}, {1: {**COMPUTE, "batch": 64}}, "lenet5", 0.8, 0.0,
                        np.array([10]), np.array([1e6]))


def test_runs_of_one_name_in_two_settings_are_both_read(tmp_path):
    """make decision-trials puts each setting's runs in a folder of its own, under the grid's run names."""
    every, tenth = _run("federated", [0.85], 10), _run("federated", [0.7, 0.85], 10)
    tenth["config"]["fraction"] = 0.1
    for folder, run in (("every", every), ("tenth", tenth)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "federated-iid-s0.json").write_text(json.dumps(run))
    runs = decision.load_runs([tmp_path / "every", tmp_path / "tenth"])
    assert sorted(decision.by_setting(runs["lenet5"]["federated"])) == sorted([decision.setting(every),
                                                                                decision.setting(tenth)])


def test_another_batch_size_is_timed_beside_the_files_own_and_read_for_runs_of_that_size(tmp_path):
    path = tmp_path / "times.json"
    decision.time_roles(path, [("lenet5", 2)], repeats=3)
    before = json.loads(path.read_text())
    decision.time_other_batch(path, [("lenet5", 2)], 8, repeats=3)
    saved = json.loads(path.read_text())
    assert saved["times"] == before["times"] and saved["batch"] == 64  # the file's own batch untouched
    assert set(saved["times_at_batch"]["8"]["times"]["lenet5"]["2"]) == set(before["times"]["lenet5"]["2"])
    decision.time_other_batch(path, [("lenet5", 2)], 8, repeats=3)
    assert json.loads(path.read_text()) == saved  # a size already timed is kept
    compute, _ = decision.read_role_times(path, "lenet5", {2})
    assert compute[2, 8] == {**{role: s["least"] for role, s in saved["times_at_batch"]["8"]["times"]["lenet5"]["2"]
                                .items()}, "batch": 8}
    small = _run("federated", [0.85], 10)
    small["config"].update(batch_size=8, cut_layer=2)
    seconds, _ = decision.setting_seconds({10: [small]}, compute, "lenet5", 0.8, 0.0, np.array([10]), np.array([1e30]))
    assert seconds[0, 0, 1] == pytest.approx(math.ceil(6000 / 8) * compute[2, 8]["whole"])  # 750 steps of batch 8


def test_a_partition_is_matched_as_a_number(tmp_path):
    """study.py names runs with the alpha as given (make study's a1.0); decision.py --partition 1 finds them."""
    (tmp_path / "split-a1.0-s0.json").write_text(json.dumps(_run("split", [0.85], 10)))
    assert list(decision.load_runs([tmp_path], "1")["lenet5"]) == ["split"]
    assert decision.load_runs([tmp_path], "0.5") == {} and decision.load_runs([tmp_path]) == {}
