"""Early stopping, the results file and the shared epoch loop."""

import argparse
import io
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from splitlab.training import results_guard
from splitlab.training.cli import common_parser, warn_if_link_set
from splitlab.training.loop import Plateau, fit
from splitlab.training.results import Results
from splitlab.training.results_guard import KILLED, mark_failed_if_running, write_json_atomic
from splitlab.training.steps import Scores

PARSER = common_parser("regular", "")

CONTRACT_EPOCH_KEYS = {"epoch", "train_loss", "test_loss", "test_acc", "epoch_time_s", "elapsed_s", "bytes_sent",
                       "bytes_received"}


def test_early_stopping_waits_patience_epochs_without_improvement():
    plateau = Plateau(patience=2, lr=0.01, decay=1.0, lr_patience=1)
    decisions = [plateau.should_stop(loss) for loss in [1.0, 0.8, 0.9, 0.7, 0.75, 0.71]]
    assert decisions == [False, False, False, False, False, True]
    assert plateau.lr == 0.01


def test_patience_zero_never_stops():
    plateau = Plateau(patience=0, lr=0.01, decay=1.0, lr_patience=1)
    assert not any(plateau.should_stop(loss) for loss in [1, 2, 3, 4, 5, 6])


def rates_after(plateau, losses):
    rates = []
    for loss in losses:
        plateau.should_stop(loss)
        rates.append(plateau.lr)
    return rates


def test_learning_rate_decays_after_each_epoch_without_improvement():
    plateau = Plateau(patience=0, lr=0.01, decay=0.1, lr_patience=1)
    assert rates_after(plateau, [1.0, 0.8, 0.9, 0.7, 0.75]) == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001])


def test_one_noisy_epoch_does_not_decay_with_lr_patience_two():
    plateau = Plateau(patience=0, lr=0.01, decay=0.1, lr_patience=2)
    losses = [1.0, 1.1, 0.9, 0.95, 0.96, 0.97, 0.98]
    assert rates_after(plateau, losses) == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.0001])


def test_fit_hands_the_decayed_rate_to_the_next_epoch(tmp_path):
    args = args_for(tmp_path, patience=0, epochs=3, lr_patience=1)
    losses = iter([0.5, 0.6, 0.4])
    rates = []
    fit(args, Results(args, PARSER, "regular", "cpu"), lambda epoch, lr: rates.append(lr) or {"train_loss": 1.0},
        lambda: {"test_loss": next(losses), "test_acc": 0.8})
    assert rates == pytest.approx([0.01, 0.01, 0.001])
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert [e["lr"] for e in saved["epochs"]] == pytest.approx(rates)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"epochs": [1]})

    def disk_full(fd):  # written, but not to the disk: the process fails
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_json_atomic(path, {"epochs": [1, 2]})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"epochs": [1]}
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind


def test_results_files_keep_every_value_and_put_a_list_of_values_on_one_line(tmp_path):
    run = {"config": {"run_name": "a, [b]\n", "lr": 0.01}, "epochs": [{"client_cpu_s": [1.5, 2, None],
                                                                       "names": ["x,\ny", "]"], "empty": []}]}
    write_json_atomic(tmp_path / "r.json", run)
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text) == run
    assert '"client_cpu_s": [1.5, 2, null],' in text and '"lr": 0.01\n' in text


def test_results_file_is_as_readable_as_any_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {})
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600


def args_for(tmp_path, **overrides):
    args = common_parser("regular", "").parse_args(["--results-dir", str(tmp_path), "--epochs", "5"])
    return argparse.Namespace(**{**vars(args), **overrides})


def test_fit_writes_every_contracted_key_and_stops_early(tmp_path):
    args = args_for(tmp_path, patience=2)
    losses = iter([0.5, 0.4, 0.45, 0.41, 0.3])
    results = Results(args, PARSER, "regular", "cpu")
    fit(args, results, lambda epoch, lr: {"train_loss": 1.0 / epoch},
        lambda: {"test_loss": next(losses), "test_acc": 0.8})
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert saved["status"] == "stopped_early"
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2, 3, 4]
    assert all(CONTRACT_EPOCH_KEYS <= e.keys() for e in saved["epochs"])
    assert saved["best"] == {"epoch": 2, "test_loss": 0.4, "test_acc": 0.8}
    assert {"method", "status", "config", "environment", "epochs", "best"} <= saved.keys()
    assert saved["config"]["world_size"] == 1 and saved["config"]["epochs"] == 5
    assert set(saved["environment"]) == {"python", "torch", "mpi", "cpus", "device"}


def test_stop_at_ends_the_run_at_the_first_epoch_that_reaches_the_accuracy(tmp_path):
    args = args_for(tmp_path, patience=0, stop_at=0.8)
    accuracies = iter([0.5, 0.79, 0.8, 0.9, 0.95])
    fit(args, Results(args, PARSER, "regular", "cpu"), lambda epoch, lr: {"train_loss": 1.0},
        lambda: {"test_loss": 1.0, "test_acc": next(accuracies)})
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert saved["status"] == "stopped_early" and [e["test_acc"] for e in saved["epochs"]] == [0.5, 0.79, 0.8]


def test_with_a_validation_set_every_choice_reads_it_and_the_test_set_chooses_nothing(tmp_path):
    """The plateau, the decay, --stop-at and the best epoch read the validation set: test numbers that would
    choose otherwise (here: the test loss rising while the validation loss falls) change nothing."""
    args = args_for(tmp_path, validation=100, patience=2, lr_patience=1, stop_at=0.85, epochs=6)
    val = iter([(0.9, 0.5), (0.8, 0.6), (0.85, 0.7), (0.7, 0.8), (0.6, 0.86), (0.5, 0.9)])
    test = iter([(0.5, 0.9), (0.6, 0.8), (0.7, 0.7), (0.8, 0.6), (0.9, 0.5), (1.0, 0.4)])
    rates = []
    fit(args, Results(args, PARSER, "regular", "cpu"), lambda epoch, lr: rates.append(lr) or {"train_loss": 1.0},
        lambda: dict(zip(["val_loss", "val_acc", "test_loss", "test_acc"], [*next(val), *next(test)])))
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert rates == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001])  # decayed after epoch 3, its val loss no best
    assert saved["status"] == "stopped_early" and len(saved["epochs"]) == 5  # val acc 0.86 >= 0.85 at epoch 5
    assert saved["best"] == {"epoch": 5, "val_loss": 0.6, "val_acc": 0.86, "test_loss": 0.9, "test_acc": 0.5}


def test_scores_tell_the_validation_images_from_the_test_images_after_them_within_a_batch():
    generator = torch.Generator().manual_seed(0)
    logits, target = torch.randn(300, 10, generator=generator), torch.randint(0, 10, (300,), generator=generator)
    scores = Scores(validation=70)
    for start in range(0, 300, 64):  # the batch of 64..127 holds validation and test images
        scores.add(logits[start:start + 64], target[start:start + 64])
    apart = [Scores() for _ in range(2)]
    apart[0].add(logits[:70], target[:70])
    apart[1].add(logits[70:], target[70:])
    result, val, test = scores.result(), apart[0].result(), apart[1].result()
    assert result == {**test, "test_loss": pytest.approx(test["test_loss"]),  # losses summed in another order
                      "val_loss": pytest.approx(val["test_loss"]), "val_acc": val["test_acc"]}
    merged = Scores(validation=70)
    merged.merge(scores.sums())  # as a U-shaped client's scores reach the server
    assert merged.result() == result


def test_a_crash_keeps_completed_epochs_and_says_failed(tmp_path):
    args = args_for(tmp_path, patience=0)

    def train_one_epoch(epoch, lr):
        if epoch == 3:
            raise RuntimeError("boom")
        return {"train_loss": 1.0}

    with pytest.raises(RuntimeError):
        fit(args, Results(args, PARSER, "regular", "cpu"), train_one_epoch, lambda: {"test_loss": 1.0, "test_acc": 0.5})
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert saved["status"] == "failed" and "boom" in saved["error"]
    assert len(saved["epochs"]) == 2


def test_a_crash_after_the_last_epoch_says_failed(tmp_path):
    args = args_for(tmp_path, patience=0, epochs=2)

    def final_info():
        raise OSError("disk full")

    with pytest.raises(OSError):
        fit(args, Results(args, PARSER, "regular", "cpu"), lambda epoch, lr: {"train_loss": 1.0},
            lambda: {"test_loss": 1.0, "test_acc": 0.5}, final_info=final_info)
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == "OSError: disk full" and len(saved["epochs"]) == 2


def test_a_killed_run_is_marked_failed_by_its_guard(tmp_path):
    script = ("import os, signal\nfrom splitlab.training.cli import common_parser\n"
              "from splitlab.training.results import Results\n"
              f"args = common_parser('regular', '').parse_args(['--results-dir', {str(tmp_path)!r}])\n"
              "Results(args, common_parser('regular', ''), 'regular', 'cpu')\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", script], cwd=ROOT).returncode == -9
    deadline = time.monotonic() + 10
    while json.loads((tmp_path / "regular.json").read_text())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert saved["status"] == "failed" and saved["error"].startswith("killed:")


def test_the_guard_marks_only_a_file_that_still_says_running(tmp_path):
    for status in ("running", "completed", "failed"):
        write_json_atomic(tmp_path / f"{status}.json", {"status": status, "epochs": [{"epoch": 1}]})
        mark_failed_if_running(tmp_path / f"{status}.json")
    assert json.loads((tmp_path / "running.json").read_text()) == {"status": "failed", "epochs": [{"epoch": 1}],
                                                                   "error": KILLED}
    assert json.loads((tmp_path / "completed.json").read_text()) == {"status": "completed", "epochs": [{"epoch": 1}]}
    assert "error" not in json.loads((tmp_path / "failed.json").read_text())
    (tmp_path / "half.json").write_text('{"status": "runn')  # not JSON: left as it is, no traceback
    mark_failed_if_running(tmp_path / "half.json")
    mark_failed_if_running(tmp_path / "missing.json")
    assert (tmp_path / "half.json").read_text() == '{"status": "runn' and not (tmp_path / "missing.json").exists()


@pytest.fixture
def guard(monkeypatch):
    """``guard(path, rank, host, said)``: results_guard.py's main() for one rank, run here, its run's process
    having written ``said`` before it ended (without the wait for other ranks' notes)."""
    monkeypatch.setattr(results_guard, "NOTES_WAIT_S", 0.0)

    def run(path, rank, host, said):
        monkeypatch.setattr(sys, "argv", ["results_guard.py", str(path), str(rank), host])
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(said)))
        results_guard.main()
    return run


def test_the_guards_of_an_mpi_run_name_the_rank_that_ended_first(tmp_path, guard):
    """Each rank's guard notes a rank that ended without saying "done"; rank 0's marks the file failed naming
    the first of them and its host, then removes the notes. Ranks that said "done" leave no note."""
    path = tmp_path / "split.json"
    write_json_atomic(path, {"status": "running", "epochs": []})
    guard(path, 1, "node1", b"done")
    assert not results_guard.notes_path(path).exists()
    guard(path, 2, "node2", b"")  # killed first
    guard(path, 1, "node1", b"")
    guard(path, 0, "node0", b"")
    saved = json.loads(path.read_text())
    assert saved["status"] == "failed"
    assert saved["error"].startswith("killed: rank 2 (on node2) ended first without a word")
    assert not results_guard.notes_path(path).exists()


def test_the_first_noted_end_is_the_earliest_and_a_finished_run_is_left_alone(tmp_path, guard):
    path = tmp_path / "split.json"
    assert results_guard.first_ended(path) is None  # no notes
    notes = [{"rank": 3, "host": "b", "at": 20.0}, {"rank": 1, "host": "a", "at": 10.0},
             {"rank": 0, "host": "a", "at": 30.0}]
    results_guard.notes_path(path).write_text("".join(json.dumps(n) + "\n" for n in notes))
    assert results_guard.first_ended(path) == notes[1]
    assert results_guard.notes_path(path).name == ".split.ended"
    write_json_atomic(path, {"status": "completed", "epochs": []})
    guard(path, 0, "a", b"")
    assert json.loads(path.read_text())["status"] == "completed"
    assert results_guard.killed_error() == KILLED


def test_a_results_file_is_indented_json_readable_by_anyone(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {"epochs": [1]})
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").read_text() == '{\n  "epochs": [1]\n}'
    assert oct((tmp_path / "r.json").stat().st_mode & 0o044) == oct(0o044)  # group and others may read it


def test_evaluation_traffic_is_added_to_the_epoch(tmp_path):
    args = args_for(tmp_path, epochs=1)
    fit(args, Results(args, PARSER, "split", "cpu"), lambda e, lr: {"train_loss": 1.0, "bytes_sent": 10, "bytes_received": 10},
        lambda: {"test_loss": 1.0, "test_acc": 0.5, "bytes_sent": 5, "bytes_received": 5})
    epoch = json.loads((tmp_path / "regular.json").read_text())["epochs"][0]
    assert (epoch["bytes_sent"], epoch["bytes_received"]) == (15, 15)


def test_per_class_accuracy_weighted_by_class_counts_is_the_overall_accuracy():
    generator = torch.Generator().manual_seed(0)
    logits, target = torch.randn(500, 10, generator=generator), torch.randint(0, 9, (500,), generator=generator)
    scores = Scores()
    for start in range(0, 500, 64):  # summed over batches, as every method evaluates
        scores.add(logits[start:start + 64], target[start:start + 64])
    result = scores.result()
    counts = torch.bincount(target, minlength=10).tolist()
    assert result["test_class_acc"][9] is None  # no test image of class 9
    weighted = sum(acc * n for acc, n in zip(result["test_class_acc"], counts) if acc is not None) / 500
    assert weighted == pytest.approx(result["test_acc"], abs=1e-9)
    assert result["test_acc"] == pytest.approx((logits.argmax(1) == target).double().mean().item(), abs=1e-9)
    assert result["test_class_acc"][3] == pytest.approx(
        (logits.argmax(1) == target)[target == 3].double().mean().item(), abs=1e-9)


def test_a_run_at_chance_level_is_warned_about_and_recorded(tmp_path, capsys):
    args = args_for(tmp_path, epochs=2, patience=0)
    one_class = [1.0] + [0.0] * 9  # predicts class 0 for everything: 10 % overall
    evaluations = iter([{"test_loss": 2.3, "test_acc": 0.1, "test_class_acc": one_class},
                        {"test_loss": 1.0, "test_acc": 0.6, "test_class_acc": [0.6] * 10}])
    data = fit(args, Results(args, PARSER, "regular", "cpu"), lambda epoch, lr: {"train_loss": 2.3}, lambda: next(evaluations))
    assert [e.get("at_chance", False) for e in data["epochs"]] == [True, False]
    assert data["epochs_at_chance"] == [1]
    assert "warning: epoch 1: test accuracy 10.0% is at chance level" in capsys.readouterr().err


def test_a_link_set_for_a_run_without_messages_is_named_not_ignored(monkeypatch, capsys):
    monkeypatch.delenv("LINK", raising=False)
    warn_if_link_set()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("LINK", "10mbit,20ms")
    warn_if_link_set()
    assert "LINK=10mbit,20ms is ignored" in capsys.readouterr().err


def test_a_loss_that_is_not_a_number_ends_the_run_diverged_at_that_epoch(tmp_path, capsys):
    args = args_for(tmp_path, epochs=5, patience=0)
    losses = iter([1.0, float("nan"), 0.5])
    data = fit(args, Results(args, PARSER, "regular", "cpu"), lambda epoch, lr: {"train_loss": next(losses)},
               lambda: {"test_loss": 1.0, "test_acc": 0.5})
    assert data["status"] == "diverged" and data["diverged_at_epoch"] == 2 and len(data["epochs"]) == 2
    assert json.loads((tmp_path / "regular.json").read_text())["status"] == "diverged"
    assert "error: epoch 2: the run diverged: train_loss nan" in capsys.readouterr().err
