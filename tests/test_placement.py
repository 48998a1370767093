"""Clients are not ranks: K clients give the same numbers, and count the same traffic, on any number of ranks
(placement.py). Threads are pinned: floating-point sums follow the thread count."""

import json

import pytest

from conftest import PINNED, mpirun, needs_data, script
from placement import Placement
from training import InputError

TINY = ["--train-subset", "480", "--test-subset", "200", "--patience", "0", "--no-progress"]
NO_LEAKAGE = ["--leakage-images", "0"]


def test_clients_are_placed_in_even_contiguous_blocks():
    placement = Placement(10, 4)
    assert [placement.clients_on(r) for r in (1, 2, 3, 4)] == [[1, 2, 3], [4, 5, 6], [7, 8], [9, 10]]
    assert all(placement.rank_of(k) == r for r in (1, 2, 3, 4) for k in placement.clients_on(r))
    assert [Placement(4, 4).rank_of(k) for k in (1, 2, 3, 4)] == [1, 2, 3, 4]  # the default: client k is rank k
    assert placement.describe()["clients_per_rank"] == [3, 3, 2, 2]


def test_fewer_clients_than_client_ranks_is_an_input_error():
    with pytest.raises(InputError, match="--clients 3 is fewer than the 4 client ranks"):
        Placement(3, 4)


def run(ranks, script_name, tmp_path, *flags, clients=4, epochs=2, env=None):
    """``clients`` clients of ``script_name`` on ``ranks - 1`` client ranks; the results file."""
    folder = tmp_path / f"{ranks}-ranks"
    result = mpirun(ranks, script_name, "--clients", str(clients), "--epochs", str(epochs), *TINY, *flags,
                    "--results-dir", str(folder), env={**PINNED, **(env or {})}, timeout=240)
    assert result.returncode == 0, result.stderr
    return json.loads(next(folder.glob("*.json")).read_text())


def losses(run_):
    return [e[key] for e in run_["epochs"] for key in ("train_loss", "test_loss", "test_acc")]


def later_epoch_bytes(run_):
    """Bytes of the epochs after the first (the first also carries the set-up, one message a rank)."""
    return [e[key] for e in run_["epochs"][1:] for key in ("bytes_sent", "bytes_received")]


@needs_data
@pytest.mark.parametrize("script_name, flags", [
    ("split_learning.py", NO_LEAKAGE),
    ("split_learning.py", [*NO_LEAKAGE, "--client-weights", "pass"]),  # hand-overs within a rank and across
    ("split_learning.py", [*NO_LEAKAGE, "--variant", "u-shaped"]),
    ("split_learning.py", [*NO_LEAKAGE, "--variant", "sflv1"]),
    ("federated_learning.py", []),
    ("sync_sgd.py", []),
], ids=["vanilla", "vanilla-pass", "u-shaped", "sflv1", "fedavg", "sync-sgd"])
def test_four_clients_give_the_same_numbers_and_traffic_on_one_two_and_four_client_ranks(tmp_path, script_name,
                                                                                          flags):
    runs = {ranks: run(ranks, script_name, tmp_path, *flags) for ranks in (2, 3, 5)}
    assert [r["placement"]["clients_per_rank"] for r in runs.values()] == [[4], [2, 2], [1, 1, 1, 1]]
    for ranks in (2, 3):
        assert losses(runs[ranks]) == pytest.approx(losses(runs[5]), abs=1e-4)
        # control messages carry numbers whose digits vary: a few bytes an epoch
        assert later_epoch_bytes(runs[ranks]) == pytest.approx(later_epoch_bytes(runs[5]), abs=16)
        if script_name == "split_learning.py":
            assert runs[ranks]["final_client_test_acc"] == pytest.approx(runs[5]["final_client_test_acc"],
                                                                         abs=1e-4)
            assert runs[ranks]["server_received"] == runs[5]["server_received"]


@needs_data
def test_splitfed_v2_counts_the_same_traffic_on_any_placement_and_repeats_on_one_client_rank(tmp_path):
    """V2's server part takes batches in arrival order, which depends on timing and placement; its traffic does
    not, and with one client rank (one client at a time, in client order) the run repeats to the digit."""
    one = run(2, "split_learning.py", tmp_path / "a", *NO_LEAKAGE, "--variant", "sflv2")
    again = run(2, "split_learning.py", tmp_path / "b", *NO_LEAKAGE, "--variant", "sflv2")
    four = run(5, "split_learning.py", tmp_path, *NO_LEAKAGE, "--variant", "sflv2")
    assert losses(one) == losses(again)
    assert later_epoch_bytes(one) == pytest.approx(later_epoch_bytes(four), abs=16)


@needs_data
def test_the_last_client_and_a_seeded_sample_of_the_others_are_evaluated_at_the_end(tmp_path):
    saved = run(3, "split_learning.py", tmp_path, *NO_LEAKAGE, "--eval-clients", "3", clients=6, epochs=1)
    assert saved["config"]["clients"] == 6 and len(saved["shard_sizes"]) == 6
    assert len(saved["evaluated_clients"]) == 3 == len(saved["final_client_test_acc"])
    assert saved["evaluated_clients"][-1] == 6 and len(set(saved["evaluated_clients"])) == 3


@needs_data
def test_one_process_fedavg_with_k_clients_equals_k_clients_on_fewer_ranks_without_doorbells(tmp_path):
    mpi_run = run(3, "federated_learning.py", tmp_path, env={"DOORBELLS": "off"})
    result = script("federated_learning.py", "--clients", "4", "--epochs", "2", *TINY,
                    "--results-dir", str(tmp_path / "one"), env=PINNED)
    assert result.returncode == 0, result.stderr
    one = json.loads((tmp_path / "one" / "federated.json").read_text())
    assert losses(one) == pytest.approx(losses(mpi_run), abs=1e-4)
