"""The process policy (process_policy.py): what each rank takes of its host, on 2 cores and on many."""

import json
import sys

import pytest

from common import MPIRUN
from conftest import needs_data, run
from splitlab.methods import split_variants
from splitlab.net import process_policy
from splitlab.net.process_policy import MAX_THREADS, Host, Plan, one_at_a_time, side_by_side

TWO_CORES = Host(cores=2, sharing=11)  # the developers' machine under mpirun -n 11


@pytest.fixture(autouse=True)
def no_thread_override(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def splitfed(host, num_clients=10):
    """SplitFed's layout on ``host``: the server's plan, clients at once, a client's plan."""
    return (split_variants.SplitFedServer.plan(host, num_clients),
            process_policy.splitfed_clients_at_once(host, num_clients),
            split_variants.SplitFedClient.plan(host, num_clients))


def test_two_cores_keep_the_settings_measured_there():
    # docs/performance.md: every split rank 2 threads, sleeping on doorbells; SplitFed's server 1 thread and
    # 2 clients of 1 thread at once; FedAvg's and sync SGD's clients 1 thread; their rank 0 2 threads.
    assert one_at_a_time(TWO_CORES) == Plan(2, 0.0)
    assert splitfed(TWO_CORES) == (Plan(1, 0.0), 2, Plan(1, 0.0))
    assert process_policy.fedavg_clients_at_once(TWO_CORES, 10) == 2
    assert side_by_side(TWO_CORES, process_policy.fedavg_clients_at_once(TWO_CORES, 10)) == Plan(1, 0.0)
    assert side_by_side(TWO_CORES, 10) == Plan(1, 0.0)  # sync SGD's workers
    assert side_by_side(TWO_CORES) == Plan(2, 0.0)


def test_clients_on_other_hosts_train_at_once_on_those_hosts_cores():
    """Rank 0's 2 cores with 6 more on two other hosts: FedAvg trains 8 clients at once, SplitFed 7 (one core is
    its server's); on one host, as many as there are cores."""
    spread = Host(cores=2, sharing=1, elsewhere=6)
    assert process_policy.fedavg_clients_at_once(spread, 10) == 8
    assert process_policy.fedavg_clients_at_once(spread, 3) == 3
    assert process_policy.splitfed_clients_at_once(spread, 10) == 7
    assert process_policy.fedavg_clients_at_once(Host(cores=2, sharing=3), 10) == 2


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 6, 8, 12, 16, 32, 64])
def test_ranks_that_compute_at_once_never_take_more_threads_than_cores(cores):
    host = Host(cores, sharing=11)
    for at_once in range(1, 11):
        assert side_by_side(host, at_once).threads * at_once <= max(cores, at_once)
    server, at_once, client = splitfed(host)
    if cores >= 3:  # below that SplitFed still runs 2 clients beside the server (the measured 2-core setting)
        assert server.threads + at_once * client.threads <= cores
    assert 1 <= one_at_a_time(host).threads <= min(cores, MAX_THREADS)


def test_ranks_that_take_turns_take_at_most_max_threads_others_their_share():
    assert one_at_a_time(Host(16, sharing=11)).threads == MAX_THREADS == one_at_a_time(Host(64, 2)).threads
    assert side_by_side(Host(16, sharing=11)).threads == 16 and side_by_side(Host(16, sharing=11), 4).threads == 4
    server, at_once, client = splitfed(Host(16, sharing=11))
    assert (server.threads, at_once, client.threads) == (8, 8, 1)  # the server is busy: half the cores


def test_a_rank_polls_only_where_its_cores_have_room_beside_the_computing_threads():
    for cores in range(1, 65):
        plan = one_at_a_time(Host(cores, sharing=11))
        assert (plan.poll_s > 0) == (cores >= plan.threads + 1)
    assert one_at_a_time(Host(16, sharing=11)).poll_s > 0
    assert one_at_a_time(Host(4, sharing=11)).poll_s == 0  # 4 threads compute: no core left for the waiter
    # ranks that compute side by side never poll: the other ranks' threads have the cores
    assert all(side_by_side(Host(c, 11), k).poll_s == 0 for c in (2, 16, 64) for k in (1, 10))


def test_ranks_bound_to_their_own_cores_use_all_of_them():
    # Open MPI, say, binds each rank to its own cores: then no other rank shares them.
    assert side_by_side(Host(2, sharing=1), 10).threads == 2
    assert side_by_side(Host(2, sharing=2), 10).threads == 1


def test_omp_num_threads_is_the_most_any_rank_takes(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    assert one_at_a_time(Host(16, 11)).threads == 16  # in place of the cap
    assert side_by_side(Host(16, 11), 10).threads == 1  # still a share of the cores
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert side_by_side(Host(16, 11)).threads == 2 and one_at_a_time(Host(16, 11)).threads == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a count: ignored
    assert one_at_a_time(Host(16, 11)).threads == MAX_THREADS


@needs_data
@pytest.mark.parametrize("taskset, env, threads", [
    ([], {}, min(MAX_THREADS, len(process_policy.affinity()))),
    (["taskset", "-c", "0"], {}, 1),  # one core: one thread each
    ([], {"OMP_NUM_THREADS": "1"}, 1),
])
def test_every_rank_runs_with_the_plan_the_policy_gives(tmp_path, monkeypatch, taskset, env, threads):
    # What each rank actually ran with (torch's thread count and its polling, reported at set-up) is in the
    # results file.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = one_at_a_time(Host(1 if taskset else len(process_policy.affinity()), sharing=2))
    flags = ["--train-subset", "300", "--test-subset", "100", "--epochs", "1", "--leakage-images", "0",
             "--no-progress", "--results-dir", str(tmp_path)]
    result = run([*taskset, MPIRUN, "-n", "2", sys.executable, "split_learning.py", *flags], timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    environment = json.loads((tmp_path / "split.json").read_text())["environment"]
    assert environment["rank_threads"] == [threads] * 2 == [plan.threads] * 2
    assert environment["rank_poll_s"] == [plan.poll_s] * 2
