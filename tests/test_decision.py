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
    sends K models and takes K back, the last client's overlapping: K + 1 transfers and two latencies."""
    bits, latency = 1e7, 0.02
    batches = 10 * math.ceil(6000 / 64)
    free, _ = decision.epoch_seconds("vanilla", 10, FREE, COMPUTE, "lenet5")
    slow, moved = decision.epoch_seconds("vanilla", 10, (bits, latency), COMPUTE, "lenet5")
    assert slow - free == pytest.approx((2 * batches + 2 * 10) * latency + moved * 8 / bits)
    free, _ = decision.epoch_seconds("fedavg", 10, FREE, COMPUTE, "lenet5")
    slow, moved = decision.epoch_seconds("fedavg", 10, (bits, latency), COMPUTE, "lenet5")
    assert slow - free == pytest.approx(2 * latency + moved / 2 / 10 * 11 * 8 / bits)


def _run(method, accuracies, clients, variant="vanilla"):
    return {"method": method, "status": "completed",
            "config": {"variant": variant, "cut_layer": 1, "batch_size": 64, "model": "lenet5", "clients": clients},
            "epochs": [{"epoch": i + 1, "test_acc": a} for i, a in enumerate(accuracies)]}


def test_epochs_to_the_target():
    assert decision.epochs_to(_run("split", [0.7, 0.82, 0.85], 10), 0.8) == (2, True)
    assert decision.epochs_to(_run("split", [0.7, 0.75], 10), 0.8) == (2, False)


def test_epochs_between_measured_clients_are_interpolated_in_log_clients():
    measured = {10: (1, True), 1000: (3, True)}
    assert decision.interpolated_epochs(measured, 100) == (pytest.approx(2), True)
    assert decision.interpolated_epochs(measured, 10) == (1, True)
    assert decision.interpolated_epochs({10: (1, True), 1000: (3, False)}, 100)[1] is False
    assert decision.interpolated_epochs(measured, 2000) is None  # not measured so far out: takes no part


def test_a_method_short_of_the_target_wins_nothing_and_may_leave_cells_undecided():
    """FedAvg reaches the target only with 10 clients: there it may win; with 10,000 it cannot, and a cell is
    undecided where its lower bound (the rounds it ran) is below split learning's time."""
    runs = {"split": {10: _run("split", [0.85], 10), 10000: _run("split", [0.85], 10000)},
            "federated": {10: _run("federated", [0.85], 10), 10000: _run("federated", [0.2], 10000)}}
    clients, bandwidths = np.array([10, 10000]), np.array([1e6, 1e10])
    winner, seconds = decision.decide(runs, {1: COMPUTE}, "lenet5", 0.8, 0.01, clients, bandwidths)
    for i, k in enumerate(clients):
        for j in range(len(bandwidths)):
            split_time, fedavg_time = seconds["split"][i, j], seconds["federated"][i, j]
            if k == 10:
                assert winner[i, j] == ("split" if split_time < fedavg_time else "federated")
            else:
                assert winner[i, j] == ("" if fedavg_time < split_time else "split")
    assert set(winner[1]) == {"", "split"}  # both occur: a slow link favours split learning at 10,000


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
    assert len(runs["lenet5"]["federated"][10]["epochs"]) == 3  # of two runs, the longer
    assert {name: sorted(by_k) for name, by_k in runs["lenet5"].items()} == {"split": [10, 1000], "sflv2": [1000],
                                                                             "federated": [10]}
    winner, seconds = decision.decide(runs["lenet5"], {1: COMPUTE}, "lenet5", 0.8, 0.01, np.array([10, 1000]),
                                      np.array([1e6, 1e9]))
    assert np.isnan(seconds["sflv2"][0]).all() and not np.isnan(seconds["sflv2"][1]).any()  # run with 1,000 only
    assert "sflv2" not in winner[0]
    monkeypatch.setattr(decision_script, "role_seconds", lambda model, cut: COMPUTE)
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--out",
                                      str(tmp_path / "decision.png")])
    decision_script.main()
    assert (tmp_path / "decision.png").stat().st_size > 10_000


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
    monkeypatch.setattr(decision_script, "role_seconds", lambda model, cut: compute[cut])
    monkeypatch.setattr(sys, "argv", ["decision.py", "--runs", str(tmp_path), "--out", str(tmp_path / "d.png")])
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
                                         (["--runs", "/nonexistent"], "/nonexistent")])
def test_bad_input_is_an_error_naming_it_and_status_2(flags, named, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["decision.py", *flags])
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
    assert decision.role_seconds("lenet5", 2, batch=8, repeats=repeats) == pytest.approx(
        {"client_forward": 3, "server": 12, "client_backward": 102, "whole": 1002})
    assert shapes == [(8, 16, 5, 5)] * (repeats + 2) and torch.get_num_threads() == threads
