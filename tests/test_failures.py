"""How a job ends when something goes wrong: nothing a peer sends runs code, a failing or silent rank ends the
job with one line naming it, every results file says how its run ended, and bad input is one line, status 2."""

import json
import time

import pytest

from conftest import in_process, mpirun, needs_data

pytestmark = needs_data
SMALL = ["--train-subset", "600", "--test-subset", "300", "--patience", "0", "--no-progress"]


def planted(plant, tmp_path, *flags, timeout=120):
    """split_learning.py on 3 ranks with ``plant`` (tests/helpers/split_learning_planted.py)."""
    return mpirun(3, "tests/helpers/split_learning_planted.py", *plant, *SMALL, "--epochs", "1",
                  "--results-dir", str(tmp_path), *flags, timeout=timeout)


def final_results(path, wait_s=10):
    """The results file once it no longer says running (a killed run's guard may need a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        saved = json.loads(path.read_text())
        if saved["status"] != "running" or time.monotonic() > deadline:
            return saved
        time.sleep(0.2)


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------------- from peers

def test_a_pickle_from_a_client_is_refused_and_never_unpickled(tmp_path):
    exploit = tmp_path / "exploit-ran"
    result = planted(["pickle", str(exploit)], tmp_path)
    assert result.returncode != 0
    assert "error: rank 0: ProtocolError: rank 0: control message with tag 2 from rank 1 is not a JSON object" \
        in result.stderr
    assert not exploit.exists()  # unpickled, the message would have created it
    saved = final_results(tmp_path / "split.json")
    assert saved["status"] == "failed" and "not a JSON object" in saved["error"]


# --------------------------------------------------------------------------------- failures and stalls

def test_a_client_that_raises_is_named_in_the_servers_results(tmp_path):
    result = planted(["raise"], tmp_path)
    assert result.returncode != 0
    assert "error: rank 2: RuntimeError: planted fault in client 2" in result.stderr
    saved = final_results(tmp_path / "split.json")
    assert saved["status"] == "failed" and saved["failed_rank"] == 2
    assert saved["error"] == "PeerFailed: rank 2: RuntimeError: planted fault in client 2"


def test_a_killed_client_leaves_no_results_file_running(tmp_path):
    start = time.monotonic()
    result = planted(["kill"], tmp_path)
    assert result.returncode != 0 and time.monotonic() - start < 60
    saved = final_results(tmp_path / "split.json")
    assert saved["status"] == "failed" and saved["error"].startswith("killed:")


def test_a_failure_after_the_last_epoch_marks_the_results_failed(tmp_path):
    result = planted(["save-fails"], tmp_path)
    assert result.returncode != 0
    saved = final_results(tmp_path / "split.json")
    assert saved["status"] == "failed" and saved["error"] == "OSError: planted: the disk is full"
    assert len(saved["epochs"]) == 1  # the epoch before the failure is kept


def test_a_client_that_stops_answering_ends_the_job_naming_it(tmp_path):
    start = time.monotonic()
    result = planted(["stop"], tmp_path, "--stall-timeout", "3")
    assert result.returncode != 0 and time.monotonic() - start < 60
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert errors[0].startswith("error: rank 0: Stalled: rank 0 waited 3 s for a message from rank 2")
    saved = final_results(tmp_path / "split.json")
    assert saved["status"] == "failed" and saved["failed_rank"] == 2


def test_a_silent_fedavg_client_is_named_once_the_others_have_answered(tmp_path):
    # FedAvg's aggregator waits for any client still in its round: once client 1 has sent its update, client 2.
    result = mpirun(3, "tests/helpers/federated_stop.py", *SMALL, "--epochs", "1", "--stall-timeout", "3",
                    "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert "Stalled: rank 0 waited 3 s for a message from rank 2 (--stall-timeout 3)" in result.stderr
    assert final_results(tmp_path / "federated.json")["status"] == "failed"


# ------------------------------------------------------------------------------------------- bad input

def assert_one_line_error(result, fragment):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert last_line(result).startswith("error:") and fragment in result.stderr


@pytest.mark.parametrize("command", [["split_learning.py"], ["sync_sgd.py"], ["federated_learning.py"]])
def test_fewer_images_than_clients_is_refused(command):
    assert_one_line_error(mpirun(2, *command, "--train-subset", "1", "--clients", "2", timeout=120),
                          "1 training images cannot give each of 2 clients one")


def test_a_dirichlet_draw_that_leaves_a_client_empty_is_refused():
    assert_one_line_error(in_process("federated_learning.py", "--train-subset", "60", "--clients", "30",
                                 "--partition", "dirichlet", "--alpha", "0.01"),
                          "left one of the 30 clients without training data")


@pytest.mark.parametrize("launch", ["one process", "mpi"])
def test_a_results_dir_that_cannot_be_written_is_refused(tmp_path, launch):
    (tmp_path / "file").write_text("")
    flags = [*SMALL, "--results-dir", str(tmp_path / "file" / "results")]
    result = in_process("federated_learning.py", *flags) if launch == "one process" else \
        mpirun(2, "split_learning.py", *flags, timeout=120)
    assert_one_line_error(result, "cannot write results into")


def test_fewer_clients_than_client_ranks_is_refused():
    assert_one_line_error(mpirun(3, "federated_learning.py", "--clients", "1", timeout=120),
                          "--clients 1 is fewer than the 2 client ranks")
