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
