"""A killed run resumes where it stopped: killed with SIGKILL in the middle of an epoch and started again with
--resume, every method ends with the numbers of a run that was never stopped (threads pinned); a resume with other
settings is refused; the grids go on from the checkpoint instead of starting again."""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common import MPIRUN, ROOT
from conftest import OFFLINE, PINNED, in_process, needs_data, results_in_one_job
from splitlab.runs import resume_flags
from splitlab.training.cli import common_parser
from splitlab.training.loop import fit
from splitlab.training.results import Results

pytestmark = needs_data
SMALL = ["--train-subset", "2000", "--test-subset", "500", "--patience", "0", "--no-progress", "--epochs", "3"]
SAME = ["train_loss", "test_loss", "test_acc", "lr", "epoch"]

# (MPI processes or None for one process, script, flags): every method, as issue 36 lists them
RUNS = {
    "regular": (None, "regular_learning.py", []),
    "fedavg-one-process": (None, "federated_learning.py", ["--clients", "3", "--client-momentum", "keep"]),
    "fedavg-mpi": (2, "federated_learning.py", ["--clients", "3", "--client-momentum", "keep"]),
    "split-three-clients-a-rank": (2, "split_learning.py", ["--clients", "3", "--client-weights", "pass",
                                                            "--leakage-images", "0"]),
    "splitfed-v2": (2, "split_learning.py", ["--variant", "sflv2", "--clients", "2", "--leakage-images", "0"]),
    "sync-sgd": (2, "sync_sgd.py", ["--clients", "3"]),
}


def command(case, folder, *extra):
    ranks, name, flags = RUNS[case]
    launch = [MPIRUN, "-n", str(ranks)] if ranks else []
    return [*launch, sys.executable, str(ROOT / name), *flags, *SMALL, "--results-dir", str(folder), *extra]


def run(cmd):
    """``cmd`` (from :func:`command`) to its end; a one-process run in this process (no start-up to pay)."""
    if cmd[0] == MPIRUN:
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                                env={**os.environ, **OFFLINE, **PINNED})
    else:
        result = in_process(cmd[1], *cmd[2:], env=PINNED)
    assert result.returncode == 0, result.stderr
    return result


def results_of(folder):
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text())


def kill_mid_run(cmd, folder, tries=3):
    """Start ``cmd``; once its checkpoint holds epoch 1, SIGKILL it and every process it started (mpirun's
    ranks too), in the middle of epoch 2 or 3. Tried again should the machine be so busy that the run ends first.
    Returns the killed run's results."""
    for _ in range(tries):
        kill_after_first_epoch(cmd, folder)
        deadline = time.monotonic() + 10
        while results_of(folder)["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)  # the results guard marks the killed run
        if results_of(folder)["status"] != "completed":
            return results_of(folder)
    raise AssertionError(f"the run ended before it could be killed, {tries} times")


def kill_after_first_epoch(cmd, folder):
    job = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, **OFFLINE, **PINNED}, start_new_session=True)
    done, deadline = [], time.monotonic() + 240
    while job.poll() is None and time.monotonic() < deadline:
        done = list(folder.glob("*.ckpt/done.json"))
        if done and json.loads(done[0].read_text())["epoch"] >= 1:
            break
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert done, f"no epoch was checkpointed before the run ended: {job.stderr.read()}"


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory):
    """The results of every run of RUNS never stopped, by case, pinned threads: the one-process runs in this process,
    the MPI runs (all on 2 processes) in one MPI job."""
    folder = tmp_path_factory.mktemp("whole")
    for case in RUNS:
        if RUNS[case][0] is None:
            run(command(case, folder / case))
    mpi = [case for case in RUNS if RUNS[case][0] is not None]
    assert {RUNS[case][0] for case in mpi} == {2}
    mpi_results = results_in_one_job(2, {case: [RUNS[case][1], *RUNS[case][2], *SMALL] for case in mpi}, folder,
                                     env=PINNED, timeout=900)
    return {**{case: results_of(folder / case) for case in RUNS if case not in mpi}, **mpi_results}


@pytest.mark.parametrize("case", RUNS)
def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_numbers_of_one_never_stopped(case, tmp_path,
                                                                                      never_stopped):
    killed = tmp_path / "killed"
    cut_short = kill_mid_run(command(case, killed), killed)
    assert cut_short["status"] == "failed" and len(cut_short["epochs"]) < 3

    resumed = run(command(case, killed, "--resume"))
    assert "resuming after epoch" in resumed.stderr
    expected, got = never_stopped[case], results_of(killed)
    assert got["status"] == "completed"
    assert [[e[k] for k in SAME] for e in got["epochs"]] == [[e[k] for k in SAME] for e in expected["epochs"]]
    # The bytes too: JSON control messages carry timings, whose lengths vary by a few bytes between any two runs;
    # bytes left out of the resumed epoch (messages sent after a rank's last report) are hundreds.
    for mine, theirs in zip(got["epochs"], expected["epochs"]):
        assert abs(mine["bytes_sent"] - theirs["bytes_sent"]) <= 64
        assert abs(mine["bytes_received"] - theirs["bytes_received"]) <= 64
    assert got["resumed_after_epochs"] in ([1], [2])
    # Only the last epoch's checkpoint is kept: one file a rank, and the record of which epoch that is.
    ranks = RUNS[case][0] or 1
    assert sorted(p.name for p in (killed / f"{got['config']['run_name']}.ckpt").iterdir()) == sorted(
        ["done.json", *(f"rank{r}-epoch3.pt" for r in range(ranks))])


def test_the_loop_resumed_after_any_epoch_decays_and_stops_as_the_loop_never_stopped(tmp_path):
    """The plateau's state (best loss, epochs without a new best, the decayed rate) and the records go through the
    checkpoint: resumed after each epoch in turn, the loop gives the same rates, records and status."""
    losses = [0.5, 0.6, 0.4, 0.45, 0.41, 0.42, 0.43]  # a decay after epochs 2, 4 and 6; stopped after 7

    def loop(folder, resumed=None):
        args = common_parser("regular", "").parse_args(
            ["--results-dir", str(folder), "--epochs", "9", "--patience", "4", "--lr-patience", "1"])
        states, trained = [], []
        fit(args, Results(args, common_parser("regular", ""), "regular", "cpu"),
            lambda epoch, lr: trained.append(epoch) or {"train_loss": lr},
            lambda: {"test_loss": losses[trained[-1] - 1], "test_acc": 0.5},
            save=lambda epoch, state: states.append(copy.deepcopy(state)), resumed=resumed)
        return states, json.loads((folder / "regular.json").read_text())

    states, whole = loop(tmp_path / "whole")
    assert whole["status"] == "stopped_early" and len(whole["epochs"]) == 7
    for after in range(1, 7):
        # the loop resumed counts its own epochs from the checkpoint's
        later, resumed = loop(tmp_path / f"after{after}", {**states[after - 1], "epochs": whole["epochs"][:after]})
        assert resumed["status"] == whole["status"] and resumed["resumed_after_epochs"] == [after]
        assert [(e["epoch"], e["lr"], e["train_loss"]) for e in resumed["epochs"]] == [
            (e["epoch"], e["lr"], e["train_loss"]) for e in whole["epochs"]]


def regular(folder, *flags):
    return in_process("regular_learning.py", "--train-subset", "600", "--test-subset", "200", "--no-progress",
                      "--results-dir", str(folder), *flags, env=PINNED)


def test_a_resume_with_other_settings_is_refused_naming_them(tmp_path):
    assert regular(tmp_path, "--epochs", "1").returncode == 0
    refused = regular(tmp_path, "--epochs", "2", "--resume", "--lr", "0.02", "--seed", "3")
    assert refused.returncode == 2
    assert "--lr, --seed differ" in refused.stderr and "Traceback" not in refused.stderr
    assert json.loads((tmp_path / "regular.json").read_text())["status"] == "completed"  # left as it was
    more = regular(tmp_path, "--epochs", "2", "--resume")  # more epochs is the same experiment
    assert more.returncode == 0, more.stderr
    assert [e["epoch"] for e in json.loads((tmp_path / "regular.json").read_text())["epochs"]] == [1, 2]


def test_a_missing_rank_file_is_refused_and_a_run_without_resume_starts_again(tmp_path):
    assert regular(tmp_path, "--epochs", "1").returncode == 0
    (tmp_path / "regular.ckpt" / "rank0-epoch1.pt").unlink()
    refused = regular(tmp_path, "--epochs", "2", "--resume")
    assert refused.returncode == 2 and "rank 0's checkpoint of epoch 1 is missing" in refused.stderr
    fresh = regular(tmp_path, "--epochs", "1")
    assert fresh.returncode == 0 and "resuming" not in fresh.stderr


def test_a_checkpoint_file_is_read_without_running_code(tmp_path):
    assert regular(tmp_path, "--epochs", "1").returncode == 0
    marker = tmp_path / "ran"
    import torch

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"parts": Planted()}, tmp_path / "regular.ckpt" / "rank0-epoch1.pt")
    refused = regular(tmp_path, "--epochs", "2", "--resume")
    assert refused.returncode == 2 and "cannot read" in refused.stderr and not marker.exists()


def test_a_grid_resumes_a_run_of_its_own_settings_and_restarts_another(tmp_path):
    assert regular(tmp_path, "--epochs", "1", "--lr", "0.02").returncode == 0
    path = tmp_path / "regular.json"
    assert resume_flags(path, ["--lr", "0.02", "--epochs", "5"]) == ["--resume"]  # more epochs: go on
    assert resume_flags(path, ["--lr", "0.03", "--epochs", "1"]) == []  # another experiment: start again
    assert resume_flags(tmp_path / "none.json", ["--lr", "0.02"]) == []
