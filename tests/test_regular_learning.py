"""Regular learning end to end, as a user runs it, and its answers to bad input."""

import json

import pytest

from conftest import in_process, needs_data, script


@needs_data
def test_two_epochs_on_a_subset_learn_and_write_every_key(tmp_path):
    result = in_process("regular_learning.py", "--epochs", "2", "--train-subset", "6000", "--test-subset", "2000",
                        "--patience", "0", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert saved["method"] == "regular" and saved["status"] == "completed"
    assert len(saved["epochs"]) == 2
    assert saved["epochs"][-1]["test_acc"] > 0.70
    assert saved["epochs"][-1]["bytes_sent"] == 0


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(("error:", "regular_learning.py: error:")), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1]


def test_empty_data_dir_without_network_says_what_is_missing(tmp_path):
    result = script("regular_learning.py", "--data-dir", str(tmp_path), "--epochs", "1")
    assert_one_line_error(result, "train-images-idx3-ubyte", "apt-get install dataset-fashion-mnist")
    assert len(result.stderr.strip().splitlines()) == 1


@needs_data
def test_truncated_data_file_is_named(tmp_path):
    import data
    source = data.find_data_dir()
    for name in data.FILES:
        path = data._file_in(source, name)
        (tmp_path / path.name).write_bytes(path.read_bytes())
    damaged = tmp_path / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    result = in_process("regular_learning.py", "--data-dir", str(tmp_path), "--epochs", "1")
    assert_one_line_error(result, "t10k-labels-idx1-ubyte.gz")


@pytest.mark.parametrize("flag, value", [("--epochs", "-1"), ("--lr", "-0.1"), ("--lr", "abc"),
                                         ("--patience", "-2"), ("--batch-size", "0"), ("--lr", "nan"),
                                         ("--lr", "inf"), ("--momentum", "inf"), ("--stop-at", "nan"),
                                         ("--seed", "-1")])
def test_bad_flags_are_argparse_errors(flag, value, tmp_path):
    # its own results folder: a flag let through would otherwise train into results/
    result = in_process("regular_learning.py", flag, value, "--results-dir", str(tmp_path))
    assert_one_line_error(result, flag)


def test_help_documents_every_flag_with_defaults():
    result = in_process("regular_learning.py", "--help")
    assert result.returncode == 0
    for flag in ["--epochs", "--patience", "--batch-size", "--test-batch-size", "--lr", "--momentum",
                 "--weight-decay", "--seed", "--data-dir", "--results-dir", "--run-name", "--train-subset",
                 "--test-subset", "--device", "--no-progress"]:
        assert flag in result.stdout
    assert "(default: 30)" in " ".join(result.stdout.split())


def test_a_run_whose_loss_is_no_longer_a_number_ends_diverged(tmp_path):
    result = in_process("regular_learning.py", "--lr", "1e6", "--train-subset", "640", "--test-subset", "200",
                        "--epochs", "3", "--patience", "0", "--no-progress", "--results-dir", str(tmp_path))
    saved = json.loads((tmp_path / "regular.json").read_text())
    assert result.returncode == 0 and saved["status"] == "diverged"
    assert saved["diverged_at_epoch"] == len(saved["epochs"]) < 3  # ended at the epoch that diverged
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: epoch {saved['diverged_at_epoch']}: the run "
                                                             "diverged")


@needs_data
def test_with_a_validation_set_wrong_test_labels_change_no_choice(tmp_path):
    """--validation: the plateau, the decay, --stop-at and the best epoch read held-out training images, so a
    test set whose every label is wrong changes the reported test numbers and nothing else."""
    import numpy as np

    import data
    source, wrong = data.find_data_dir(), tmp_path / "wrong-test-labels"
    wrong.mkdir()
    for name in data.FILES:
        if name != "t10k-labels-idx1-ubyte":
            (wrong / data._file_in(source, name).name).symlink_to(data._file_in(source, name))
    labels = data.read_idx(data._file_in(source, "t10k-labels-idx1-ubyte"), *data.FILES["t10k-labels-idx1-ubyte"])
    (wrong / "t10k-labels-idx1-ubyte").write_bytes(np.array([0x801, len(labels)], ">u4").tobytes()
                                                   + ((labels + 1) % 10).astype(np.uint8).tobytes())
    flags = ["--validation", "500", "--train-subset", "2500", "--test-subset", "500", "--epochs", "6", "--patience",
             "2", "--lr-patience", "1", "--stop-at", "0.75", "--lr", "0.05", "--no-progress"]
    runs = {}
    for name, folder in (("right", None), ("wrong", wrong)):
        result = in_process("regular_learning.py", *flags, *(["--data-dir", str(folder)] if folder else []),
                            "--results-dir", str(tmp_path / name), env={"OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr
        runs[name] = json.loads((tmp_path / name / "regular.json").read_text())

    def choices(run):
        return (run["status"], run["best"]["epoch"],
                [(e["lr"], e["train_loss"], e["val_loss"], e["val_acc"]) for e in run["epochs"]])
    assert choices(runs["wrong"]) == choices(runs["right"])
    assert all(e["test_acc"] < 0.3 for e in runs["wrong"]["epochs"])  # the labels are wrong: the test set knows it
    assert max(e["test_acc"] for e in runs["right"]["epochs"]) > 0.6
