"""The study runner: the grid it expands to, bad input, and resuming without redoing finished runs."""

import json
import re
from pathlib import Path

from conftest import needs_data, script


def dry_run(*flags):
    result = script("study.py", "--dry-run", *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_grid_is_every_method_partition_and_seed_with_regular_once_per_seed(tmp_path):
    lines = dry_run("--methods", "regular,split,federated", "--partitions", "iid,0.1", "--seeds", "0,1",
                    "--results-dir", str(tmp_path))
    assert lines[0].startswith("study: 10 runs, 0 already finished, 10 to go")
    commands = lines[1:]
    names = [c.split("--run-name ")[1].split()[0] for c in commands]
    assert sorted(names) == sorted(["regular-iid-s0", "regular-iid-s1", "split-iid-s0", "split-iid-s1",
                                    "split-a0.1-s0", "split-a0.1-s1", "federated-iid-s0", "federated-iid-s1",
                                    "federated-a0.1-s0", "federated-a0.1-s1"])
    split_alpha = next(c for c in commands if "split-a0.1-s1" in c)
    assert "mpirun -n 11" in split_alpha and "--partition dirichlet --alpha 0.1" in split_alpha
    assert "--seed 1" in split_alpha
    assert next(c for c in commands if "federated-iid-s0" in c).startswith("OMP_NUM_THREADS=")


def test_unknown_method_and_malformed_partition_are_argparse_errors():
    for flags, message in [(["--methods", "split,gossip"], "unknown method 'gossip'"),
                           (["--partitions", "iid,zero"], "a partition is 'iid' or a Dirichlet alpha"),
                           (["--seeds", "0,x"], "a seed is an integer")]:
        result = script("study.py", "--dry-run", *flags)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@needs_data
def test_an_interrupted_study_resumes_without_redoing_finished_runs(tmp_path):
    flags = ["--methods", "regular,federated", "--partitions", "iid", "--seeds", "0", "--epochs", "1",
             "--results-dir", str(tmp_path), "--extra", "--train-subset 500 --test-subset 200", "--validation", "100"]
    first = script("study.py", *flags, "--methods", "regular")  # the part that ran before the interruption
    assert first.returncode == 0, first.stderr
    finished = (tmp_path / "regular-iid-s0.json").stat().st_mtime_ns
    (tmp_path / "federated-iid-s0.json").write_text(json.dumps({"status": "running"}))  # killed mid-run
    second = script("study.py", *flags)
    assert second.returncode == 0, second.stderr
    assert "2 runs, 1 already finished, 1 to go" in second.stdout
    assert re.search(r"\[1/1\] federated-iid-s0: test accuracy [\d.]+% at epoch 1, chosen on validation \([\d.]+%\)",
                     second.stdout)
    assert (tmp_path / "regular-iid-s0.json").stat().st_mtime_ns == finished
    resumed = json.loads((tmp_path / "federated-iid-s0.json").read_text())
    assert resumed["status"] == "completed" and resumed["config"]["validation"] == 100


@needs_data
def test_a_finished_run_made_with_other_settings_is_run_again(tmp_path):
    flags = ["--methods", "regular", "--partitions", "iid", "--seeds", "0", "--results-dir", str(tmp_path),
             "--extra", "--train-subset 500 --test-subset 200", "--validation", "100"]
    assert script("study.py", *flags, "--epochs", "1").returncode == 0
    longer = script("study.py", *flags, "--epochs", "2")  # the same run name, another number of epochs
    assert longer.returncode == 0, longer.stderr
    assert "1 runs, 0 already finished, 1 to go" in longer.stdout
    assert len(json.loads((tmp_path / "regular-iid-s0.json").read_text())["epochs"]) == 2
    again = script("study.py", *flags, "--epochs", "2")
    assert "1 runs, 1 already finished, 0 to go" in again.stdout


def test_privacy_attacks_again_a_setting_it_trained_again(tmp_path, monkeypatch):
    """The grid resumes: finished trainings and attacks are kept; a training redone is attacked again, once for
    each attacker (auxiliary data size); every cut of the model is trained."""
    import privacy
    commands = []

    def fake_run(command):  # stands in for the training scripts and the attacks: writes what each would
        if "attack.py" in command or "attack_updates.py" in command:
            out = Path(command[command.index("--out") + 1])
            commands.append(f"attack {out.name}")
            out.write_text(json.dumps({"attacks": {}}))
        else:
            name = command[command.index("--run-name") + 1]
            commands.append(f"train {name}")
            (tmp_path / f"{name}.json").write_text(json.dumps({"status": "completed"}))
            (tmp_path / f"{name}.pt").write_bytes(b"parts")
        return 0.0

    monkeypatch.setattr(privacy, "run", fake_run)
    monkeypatch.setattr("sys.argv", ["privacy.py", "--settings", "none", "--aux", "500,5000",
                                     "--results-dir", str(tmp_path)])
    privacy.main()
    privacy.main()  # everything finished: nothing to do
    attacks = ["attack lenet5-cut{}-none-aux500-attack.json", "attack lenet5-cut{}-none-aux5000-attack.json"]
    first = ["train lenet5-cut1-none", *[a.format(1) for a in attacks], "train lenet5-cut2-none",
             *[a.format(2) for a in attacks], "train lenet5-fedavg", "attack lenet5-fedavg-updates-attack.json"]
    assert commands == first
    (tmp_path / "lenet5-cut2-none.json").write_text(json.dumps({"status": "running"}))  # interrupted
    (tmp_path / "lenet5-fedavg.pt").unlink()  # FedAvg's model gone: trained and attacked again
    privacy.main()
    assert commands == first + ["train lenet5-cut2-none", *[a.format(2) for a in attacks], "train lenet5-fedavg",
                                "attack lenet5-fedavg-updates-attack.json"]


def test_a_diverged_run_is_finished_and_not_run_again_and_a_failed_one_is_run_again(tmp_path):
    flags = ["--methods", "regular", "--seeds", "0", "--epochs", "2", "--results-dir", str(tmp_path)]
    command = dry_run(*flags)[1].split()
    config = {name[2:].replace("-", "_"): value for name, value in zip(command, command[1:])
              if name.startswith("--") and not value.startswith("--")}
    for status, to_go in (("diverged", "0 to go"), ("failed", "1 to go")):
        (tmp_path / "regular-iid-s0.json").write_text(json.dumps({"status": status, "config": config}))
        assert to_go in dry_run(*flags)[0]


def test_run_names_are_taken_apart_as_they_were_built():
    from splitlab.runs import attack_files, attacked_run, parse_run_name, run_name
    for method, partition, seed, clients in [("split-cut2", "iid", 0, 10), ("sflv2", "0.5", 2, 1000),
                                             ("u-shaped", "0.1", 11, 100)]:
        name = run_name(method, partition, seed, clients)
        assert parse_run_name(name) == {"method": method, "partition": partition, "seed": seed, "clients": clients}
    assert run_name("split", "iid", 0) == "split-iid-s0" and run_name("federated", "1.0", 1, 100) == \
        "federated-a1.0-s1-k100"
    assert parse_run_name("lenet5-cut1-none") is None and parse_run_name("split") is None
    assert attacked_run(attack_files("lenet5-cut2-noise1", 500)[0]) == "lenet5-cut2-noise1"
    assert attacked_run("split-attack.json") == "split"  # attack.py run alone


def test_the_privacy_grid_trains_each_setting_with_its_own_defence(tmp_path, monkeypatch):
    import privacy
    trained = {}

    def fake_run(command):  # records what the training scripts would be asked; writes what they would
        if "attack.py" in command or "attack_updates.py" in command:
            Path(command[command.index("--out") + 1]).write_text(json.dumps({"attacks": {}}))
            return 0.0
        name = command[command.index("--run-name") + 1]
        trained[name] = command
        (tmp_path / f"{name}.json").write_text(json.dumps({"status": "completed"}))
        (tmp_path / f"{name}.pt").write_bytes(b"parts")
        return 0.0

    monkeypatch.setattr(privacy, "run", fake_run)
    monkeypatch.setattr("sys.argv", ["privacy.py", "--settings", "none,nopeek=0.5,noise=2", "--cut-layers", "2",
                                     "--clients", "3", "--fedavg", "none,clip=1:noise=0.003", "--results-dir",
                                     str(tmp_path)])
    privacy.main()

    def flag(command, name):
        return command[command.index(name) + 1] if name in command else None
    split = sorted(name for name in trained if "fedavg" not in name)
    assert split == ["lenet5-cut2-noise2", "lenet5-cut2-none", "lenet5-cut2-nopeek0.5"]
    assert [(flag(trained[n], "--nopeek"), flag(trained[n], "--noise-std")) for n in split] == \
        [(None, "2"), (None, None), ("0.5", None)]
    for name in split:
        assert flag(trained[name], "--cut-layer") == "2" and flag(trained[name], "-n") == "4"  # 3 clients, server
    fedavg = {name: command for name, command in trained.items() if "fedavg" in name}
    assert {name: (flag(c, "--clip-update"), flag(c, "--update-noise"), flag(c, "--clients"))
            for name, c in fedavg.items()} == {"lenet5-fedavg": (None, None, "3"),
                                               "lenet5-fedavg-clip1-noise0.003": ("1", "0.003", "3")}
    assert all("federated_learning.py" in command for command in fedavg.values())
