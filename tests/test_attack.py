"""The reconstruction attacks: they run on a saved run as a user runs them, and refuse bad input plainly."""

import json

import pytest
import torch

from conftest import mpirun, needs_data, script
from models import split_lenet5


def assert_one_line_error(result, fragment):
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and fragment in result.stderr


def test_a_missing_file_is_named(tmp_path):
    assert_one_line_error(script("attack.py", str(tmp_path / "nothing.pt")), "nothing.pt: no such file")


def test_a_corrupt_file_is_named(tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    assert_one_line_error(script("attack.py", str(tmp_path / "broken.pt")),
                          "broken.pt is not a split-learning parts file")


def test_a_file_from_another_cut_layer_is_refused(tmp_path):
    front, server = split_lenet5(2)
    torch.save({"config": {"cut_layer": 2}, "client_parts": [[front.state_dict()]],
                "server_part": server.state_dict()}, tmp_path / "cut2.pt")
    assert_one_line_error(script("attack.py", str(tmp_path / "cut2.pt"), "--cut-layer", "1"),
                          "comes from cut layer 2, not 1")
    torch.save({"config": {"cut_layer": 1}, "client_parts": [[front.state_dict()]],
                "server_part": server.state_dict()}, tmp_path / "mislabelled.pt")
    assert_one_line_error(script("attack.py", str(tmp_path / "mislabelled.pt")), "does not fit cut layer 1")


@needs_data
def test_both_attacks_run_on_a_saved_run_and_write_their_scores(tmp_path):
    run = mpirun(3, "split_learning.py", "--train-subset", "600", "--test-subset", "300", "--epochs", "1",
                 "--no-progress", "--results-dir", str(tmp_path), timeout=180)
    assert run.returncode == 0, run.stderr
    saved = torch.load(tmp_path / "split.pt", weights_only=True)
    assert len(saved["client_parts"]) == 2 and saved["config"]["cut_layer"] == 1
    result = script("attack.py", str(tmp_path / "split.pt"), "--victims", "20", "--aux", "200",
                    "--decoder-epochs", "1", "--inversion-steps", "5", "--classifier-epochs", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "split-attack.json").read_text())
    assert set(scores["attacks"]) == {"white-box", "decoder"} and scores["strongest"] in scores["attacks"]
    for attack in scores["attacks"].values():
        assert 0 < attack["mse"] < 1 and -1 <= attack["ssim"] <= 1 and 0 <= attack["classifier_accuracy"] <= 1
    assert (tmp_path / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"


def test_privacy_settings_are_checked():
    result = script("privacy.py", "--settings", "none,dropout=0.5")
    assert result.returncode == 2 and "a setting is none, nopeek=W or noise=S" in result.stderr


@pytest.mark.parametrize("flags", [["--nopeek", "-1"], ["--noise-std", "x"]])
def test_defence_flags_are_checked(flags):
    result = script("split_learning.py", *flags)
    assert result.returncode == 2 and flags[0] in result.stderr
