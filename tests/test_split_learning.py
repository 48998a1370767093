"""Split learning over MPI, launched with mpirun as a user does."""

import json
import time

import pytest

from conftest import mpirun, mpirun_each, needs_data

SMALL = ["--train-subset", "600", "--test-subset", "300", "--patience", "0", "--no-progress"]
pytestmark = needs_data


def load(path):
    return json.loads(path.read_text())


def test_three_ranks_train_and_write_results_and_the_server_sees_only_activations_and_labels(tmp_path):
    result = mpirun(3, "split_learning.py", *SMALL, "--epochs", "2", "--cut-layer", "2",
                    "--results-dir", str(tmp_path), timeout=180)
    assert result.returncode == 0, result.stderr
    saved = load(tmp_path / "split.json")
    assert saved["method"] == "split" and saved["status"] == "completed"
    assert saved["config"]["world_size"] == 3
    assert saved["environment"]["mpi"]
    epoch = saved["epochs"][-1]
    assert epoch["test_acc"] > 0.3  # 600 images, 2 epochs: well above chance (0.1)
    assert len(saved["final_client_test_acc"]) == 2
    assert saved["final_client_test_acc"][-1] == epoch["test_acc"]  # the report's measure: the last client
    # Every batch's activations and gradients cross the wire: at least 2 x 600 x 16x5x5 floats each way.
    assert epoch["bytes_sent"] >= 2 * 600 * 16 * 5 * 5 * 4
    # every byte sent by one rank is received by another; a client's turn report counts itself in its next one,
    # and its numbers' digits vary: a few bytes can move between epochs
    assert epoch["bytes_sent"] == pytest.approx(epoch["bytes_received"], abs=16)
    # (at cut 1, tests/test_placement.py)
    kinds = {(r["tag"], tuple(r["shape_per_example"])) for r in saved["server_received"]}
    assert kinds == {("SMASHED", (16, 5, 5)), ("LABELS", ()), ("TURN_DONE", ())}


@pytest.mark.parametrize("cut_layer", ["1", "2"])
def test_a_client_that_sends_raw_images_is_a_protocol_error(tmp_path, cut_layer):
    result = mpirun(2, "tests/helpers/split_learning_planted.py", "raw-images", *SMALL, "--epochs", "1",
                    "--cut-layer", cut_layer, "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    # The server (rank 0) refuses the message; a client-side failure would not do.
    assert "error: rank 0: ProtocolError: rank 0: message with tag 10 from rank 1" in result.stderr
    assert load(tmp_path / "split.json")["status"] == "failed"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Folders of three clients' states at the start and end of each turn (two epochs), by --client-weights: the
    clients on two ranks, hand-overs within a rank (1 to 2) and between ranks (2 to 3, 3 to 1); one MPI job."""
    folder = tmp_path_factory.mktemp("recorded")
    for weights in ("pass", "keep"):
        (folder / weights).mkdir()
    job = mpirun_each(3, [["tests/helpers/split_learning_planted.py", "record", str(folder / weights), *SMALL,
                           "--epochs", "2", "--clients", "3", "--client-weights", weights,
                           "--results-dir", str(folder / weights)] for weights in ("pass", "keep")], timeout=360)
    assert job.returncode == 0, job.stderr
    return {weights: folder / weights for weights in ("pass", "keep")}


@pytest.mark.parametrize("client_weights", ["pass", "keep"])
def test_passed_weights_go_from_each_client_to_the_next(recorded, client_weights):
    import torch
    turns = [(epoch, client) for epoch in (1, 2) for client in (1, 2, 3)]
    state = {(turn, end): torch.load(recorded[client_weights] / f"epoch{turn[0]}-client{turn[1]}-{end}.pt")
             for turn in turns for end in ("start", "end")}
    handed_over = [torch.equal(state[before, "end"], state[after, "start"]) for before, after in zip(turns, turns[1:])]
    # pass: each turn starts from exactly the weights and momentum the previous turn ended with; keep: never
    assert all(handed_over) if client_weights == "pass" else not any(handed_over)


def test_one_rank_is_refused_with_a_clear_message(tmp_path):
    result = mpirun(1, "split_learning.py", *SMALL, "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert "error: needs at least 2 MPI processes" in result.stderr
    assert "mpirun -n 11 python split_learning.py" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_is_reported_once(tmp_path):
    result = mpirun(2, "split_learning.py", "--epochs", "-3", timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("error: argument --epochs") == 1


@pytest.mark.parametrize("fault", ["raise", "kill"])
def test_a_failing_client_ends_the_whole_job_quickly(tmp_path, fault):
    start = time.monotonic()
    result = mpirun(3, "tests/helpers/split_learning_planted.py", fault, *SMALL, "--epochs", "2",
                    "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - start < 60
    if fault == "raise":
        assert "planted fault in client 2" in result.stderr
