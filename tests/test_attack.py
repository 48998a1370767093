"""The reconstruction attacks: they run on a saved run as a user runs them, and refuse bad input plainly."""

import argparse
import json
import math

import pytest
import torch

import privacy
from conftest import in_process, mpirun, needs_data
from models import split


def assert_one_line_error(result, fragment):
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and fragment in result.stderr


def test_a_missing_file_is_named(tmp_path):
    assert_one_line_error(in_process("attack.py", str(tmp_path / "nothing.pt")), "nothing.pt: no such file")


def test_a_corrupt_file_is_named(tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    assert_one_line_error(in_process("attack.py", str(tmp_path / "broken.pt")),
                          "broken.pt is not a split-learning run's client parts")


def test_a_file_from_another_cut_layer_is_refused(tmp_path):
    front, server = split("lenet5", 2)
    torch.save({"config": {"cut_layer": 2}, "client_parts": [[front.state_dict()]],
                "server_part": server.state_dict()}, tmp_path / "cut2.pt")
    assert_one_line_error(in_process("attack.py", str(tmp_path / "cut2.pt"), "--cut-layer", "1"),
                          "comes from cut layer 2, not 1")
    torch.save({"config": {"cut_layer": 1}, "client_parts": [[front.state_dict()]],
                "server_part": server.state_dict()}, tmp_path / "mislabelled.pt")
    assert_one_line_error(in_process("attack.py", str(tmp_path / "mislabelled.pt")),
                          "does not fit lenet5 at cut layer 1")


def parts_file(tmp_path, client_parts, cut_layer=1):
    front, server = split("lenet5", cut_layer)
    path = tmp_path / "parts.pt"
    torch.save({"config": {"cut_layer": cut_layer}, "client_parts": [[part] for part in client_parts],
                "server_part": server.state_dict()}, path)
    return path


@pytest.mark.parametrize("weights", ["0.1,-1", "0.1,,1", "nan", "x"])
def test_bad_tv_weights_are_refused(tmp_path, weights):
    result = in_process("attack.py", str(tmp_path / "parts.pt"), "--tv-weights", weights)
    assert result.returncode == 2 and "--tv-weights" in result.stderr and "expected comma-separated numbers >= 0" \
        in result.stderr


def test_a_client_out_of_range_is_refused(tmp_path):
    path = parts_file(tmp_path, [split("lenet5", 1)[0].state_dict()] * 2)
    assert_one_line_error(in_process("attack.py", str(path), "--client", "3"), "has client parts 1..2, not 3")


@needs_data
def test_too_many_victims_are_refused(tmp_path):
    path = parts_file(tmp_path, [split("lenet5", 1)[0].state_dict()])
    assert_one_line_error(in_process("attack.py", str(path), "--victims", "6000"), "--victims must be at most 5000")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    run = mpirun(2, "split_learning.py", "--train-subset", "600", "--test-subset", "300", "--epochs", "1",
                 "--clients", "2", "--no-progress", "--results-dir", str(folder), timeout=180)
    assert run.returncode == 0, run.stderr
    return folder


QUICK_ATTACK = ["--victims", "20", "--aux", "500", "--decoder-epochs", "3", "--inversion-steps", "50",
                "--classifier-epochs", "1", "--classifier-images", "3000"]


def attack(path):
    result = in_process("attack.py", str(path), *QUICK_ATTACK)
    assert result.returncode == 0, result.stderr
    return json.loads(path.with_name(f"{path.stem}-attack.json").read_text())


@pytest.fixture(scope="module")
def trained_attack(trained_run):
    return attack(trained_run / "split.pt")


@needs_data
def test_both_attacks_run_on_a_saved_run_and_write_their_scores(trained_run, trained_attack):
    saved = torch.load(trained_run / "split.pt", weights_only=True)
    assert len(saved["client_parts"]) == 2 and saved["config"]["cut_layer"] == 1
    scores = trained_attack
    assert set(scores["attacks"]) == {"white-box", "decoder"}
    succeeded = [name for name, result in scores["attacks"].items() if not result["failed"]]
    assert scores["strongest"] == max(succeeded, key=lambda name: scores["attacks"][name]["ssim"])
    assert scores["victims"] == "test images 0..19" and scores["auxiliary"] == "test images 5000..5499"
    for result in scores["attacks"].values():
        # PSNR is the mean of the images' 10 log10(1 / MSE): by Jensen at least that of the mean MSE
        assert 0 < result["mse"] < 1 and result["psnr_db"] >= 10 * math.log10(1 / result["mse"]) - 1e-6
        assert -1 <= result["ssim_min"] <= result["ssim"] <= 1
        assert math.isclose(result["classifier_accuracy"] * 20, round(result["classifier_accuracy"] * 20))  # of 20
    assert (trained_run / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"


@needs_data
def test_the_attacks_see_what_the_activations_carry(trained_run, trained_attack, tmp_path):
    # The same attacks on a part whose weights are all zero (its activations the same for every image) get
    # nothing; on the trained part they must do far better. (An untrained part will not do as the blind
    # baseline: at cut 1 its random convolution leaks as much as a trained one, docs/findings.md "Leakage".)
    saved = torch.load(trained_run / "split.pt", weights_only=True)
    blind = tmp_path / "blind.pt"
    torch.save({**saved, "client_parts": [[{k: torch.zeros_like(v) for k, v in parts[0].items()}]
                                          for parts in saved["client_parts"]]}, blind)
    seen, unseen = trained_attack["attacks"], attack(blind)["attacks"]
    for name in ("white-box", "decoder"):
        assert seen[name]["ssim"] > unseen[name]["ssim"] + 0.15, (name, seen[name], unseen[name])
        # That blind part is every attack's baseline: recorded, and an attack on it is no better, so it failed.
        assert seen[name]["baseline_ssim"] == pytest.approx(unseen[name]["ssim"], abs=1e-3)
        assert not seen[name]["failed"] and unseen[name]["failed"], (name, seen[name], unseen[name])
        assert unseen[name]["ssim_over_baseline"] == pytest.approx(0, abs=1e-3)


def test_the_decoder_is_chosen_on_the_attackers_own_held_out_pairs():
    """Made-up pairs (images and a fixed convolution of them): of two widths the search keeps the one whose best
    pass rebuilds the held-out tenth better, at that pass, and its choice does not depend on the victims."""
    from splitlab.privacy.attack import learned_decoder
    torch.manual_seed(0)
    images = torch.nn.functional.avg_pool2d(torch.rand(300, 1, 28, 28), 5, stride=1, padding=2)
    convolution = torch.nn.Conv2d(1, 6, 2, stride=2)
    with torch.no_grad():
        activations = torch.relu(convolution(images))

    def choose(widths, victims):
        return learned_decoder(activations, images, victims, (6, 14, 14), widths, 3, seed=0)[1]
    narrow, wide = choose([2], activations[:5]), choose([32], activations[:5])
    both = choose([2, 32], activations[:5])
    curves = both.pop("decoder_held_out_curve")
    # Each width's held-out scores, pass by pass, are its own, whatever else is searched beside it.
    assert curves == {**narrow.pop("decoder_held_out_curve"), **wide.pop("decoder_held_out_curve")}
    assert [len(scores) for scores in curves.values()] == [3, 3]
    assert both["decoder_held_out_ssim"] == max(narrow["decoder_held_out_ssim"], wide["decoder_held_out_ssim"])
    assert both == max(narrow, wide, key=lambda choice: choice["decoder_held_out_ssim"])
    assert curves[str(both["decoder_width"])][both["decoder_epochs"] - 1] == both["decoder_held_out_ssim"]
    assert narrow["decoder_width"] == 2 and both != narrow  # the wider one rebuilds better here
    assert choose([2, 32], torch.zeros(5, 6, 14, 14)) == {**both, "decoder_held_out_curve": curves}


def test_the_inversion_is_chosen_on_the_attackers_own_held_out_images(monkeypatch):
    """The white-box attacker's care, on made-up images and a fixed convolution of them: of two TV weights it keeps
    the (weight, step) that rebuilds its own held-out images best, looking every LOOK_EVERY steps (here 20, for
    time), and inverts the victims with it, stopping at that step; the victims do not change the choice."""
    from splitlab.privacy import attack
    from splitlab.privacy.attack import chosen_inversion, from_unit, white_box_inversion
    LOOK_EVERY = 20
    monkeypatch.setattr(attack, "LOOK_EVERY", LOOK_EVERY)
    torch.manual_seed(0)
    images = torch.nn.functional.avg_pool2d(torch.rand(12, 1, 28, 28), 5, stride=1, padding=2)
    convolution = torch.nn.Conv2d(1, 6, 2, stride=2)

    def front(x):
        return torch.relu(convolution(x))
    with torch.no_grad():
        held, victims = front(from_unit(images[:8])), front(from_unit(images[8:]))

    steps = 2 * LOOK_EVERY + LOOK_EVERY // 2

    def choose(weights, seen):
        return chosen_inversion(front, held, images[:8], seen, weights, steps)
    (_, none), (_, heavy) = choose([0.0], victims), choose([3.0], victims)
    rebuilt, both = choose([0.0, 3.0], victims)
    curves = both.pop("inversion_held_out_curve")
    assert curves == {**none.pop("inversion_held_out_curve"), **heavy.pop("inversion_held_out_curve")}
    assert [len(scores) for scores in curves.values()] == [3, 3]  # looks at 20, 40 and the last step, 50
    assert both == max(none, heavy, key=lambda choice: choice["inversion_held_out_ssim"]) and both != heavy
    looks = [LOOK_EVERY, 2 * LOOK_EVERY, steps]
    assert curves[f"{both['inversion_tv_weight']:g}"][looks.index(both["inversion_steps"])] == \
        both["inversion_held_out_ssim"] == max(max(scores) for scores in curves.values())
    at_choice = dict(white_box_inversion(front, victims, steps, both["inversion_tv_weight"]))[both["inversion_steps"]]
    assert torch.equal(rebuilt, at_choice)
    assert choose([0.0, 3.0], torch.zeros_like(victims))[1] == {**both, "inversion_held_out_curve": curves}


@pytest.mark.parametrize("bad", ["dropout=0.5", "nopeek=-1", "noise=nan", "nopeek=inf"])
def test_privacy_settings_are_checked(bad, tmp_path):
    # its own results folder, and a run that would take seconds: a setting let through would otherwise run the grid
    result = in_process("privacy.py", "--settings", f"none,{bad}", "--results-dir", str(tmp_path), "--models",
                        "lenet5", "--cut-layers", "1", "--clients", "1", "--epochs", "1", "--aux", "100",
                        "--extra=--train-subset 64 --test-subset 200 --leakage-images 0",
                        "--attack-flags=--victims 5 --decoder-epochs 1 --inversion-steps 2 --classifier-images 500")
    assert result.returncode == 2 and "a setting is none, nopeek=W or noise=S" in result.stderr


@pytest.mark.parametrize("bad", ["clip=0:noise=1", "clip=1", "noise=1:clip=1", "clip=1:noise=nan", "epochs=5",
                                 "epochs=0:batch=10", "batch=10:epochs=5", "epochs=1.5:batch=10",
                                 "epochs=5:batch=10:noise=1"])
def test_privacy_fedavg_settings_are_checked(bad, tmp_path):
    with pytest.raises(argparse.ArgumentTypeError):  # first: a setting let through would run the FedAvg leg
        privacy.fedavg_setting(bad)
    result = in_process("privacy.py", "--fedavg", f"none,{bad}", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "a FedAvg setting is none, epochs=E:batch=B, clip=C:noise=Z or both" \
        in result.stderr


def test_privacy_fedavg_settings_name_their_runs_and_flags():
    assert privacy.fedavg_setting("clip=5:noise=0.003") == ("clip5-noise0.003", ["--clip-update", "5",
                                                                                  "--update-noise", "0.003"])
    assert privacy.fedavg_setting("epochs=5:batch=10:clip=0.5:noise=0") == (
        "e5-b10-clip0.5-noise0", ["--local-epochs", "5", "--batch-size", "10", "--clip-update", "0.5",
                                  "--update-noise", "0"])


@pytest.mark.parametrize("flags", [["--nopeek", "-1"], ["--noise-std", "x"]])
def test_defence_flags_are_checked(flags):
    result = in_process("split_learning.py", *flags)
    assert result.returncode == 2 and flags[0] in result.stderr
