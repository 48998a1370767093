"""Clients are not ranks: K clients give the same numbers, and count the same traffic, on any number of ranks
(placement.py). Threads are pinned: floating-point sums follow the thread count."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import PINNED, mpirun, needs_data, results_in_one_job
from splitlab.errors import InputError
from splitlab.methods.mpi_method import take_turns
from splitlab.net.placement import Placement

TINY = ["--train-subset", "480", "--test-subset", "200", "--patience", "0", "--no-progress", "--leakage-images", "0"]


def test_clients_are_placed_in_even_contiguous_blocks():
    placement = Placement(10, 4)
    assert [placement.clients_on(r) for r in (1, 2, 3, 4)] == [[1, 2, 3], [4, 5, 6], [7, 8], [9, 10]]
    assert all(placement.rank_of(k) == r for r in (1, 2, 3, 4) for k in placement.clients_on(r))
    assert [Placement(4, 4).rank_of(k) for k in (1, 2, 3, 4)] == [1, 2, 3, 4]  # the default: client k is rank k
    assert placement.describe()["clients_per_rank"] == [3, 3, 2, 2]


@given(ranks=st.integers(1, 64), more=st.integers(0, 2000))
def test_every_client_is_placed_once_in_contiguous_blocks_differing_by_at_most_one(ranks, more):
    placement = Placement(ranks + more, ranks)
    blocks = [placement.clients_on(r) for r in range(1, ranks + 1)]
    assert [k for block in blocks for k in block] == list(range(1, ranks + more + 1)) == placement.clients
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1 and min(map(len, blocks)) >= 1
    assert all(placement.rank_of(k) == r for r, block in enumerate(blocks, 1) for k in block)
    assert placement.describe() == {"clients": ranks + more, "client_ranks": ranks,
                                    "clients_per_rank": [len(block) for block in blocks]}


def test_fewer_clients_than_client_ranks_is_an_input_error():
    with pytest.raises(InputError, match="--clients 3 is fewer than the 4 client ranks.* or mpirun -n 4$"):
        Placement(3, 4)


PASSED = ["--clients", "12", "--client-weights", "pass", "--eval-clients", "3"]
U_SHAPED = ["--clients", "4", "--variant", "u-shaped"]


def command(*flags):
    return ["split_learning.py", *flags, "--epochs", "2", *TINY]


@pytest.fixture(scope="module")
def on_one_client_rank(tmp_path_factory):
    """The runs of PASSED and U_SHAPED with every client on one client rank, made in one MPI job; their results."""
    return results_in_one_job(2, {"passed": command(*PASSED), "u-shaped": command(*U_SHAPED)},
                              tmp_path_factory.mktemp("one-client-rank"), env=PINNED, timeout=480)


def run(ranks, tmp_path, *flags, env=None):
    """Split learning with ``flags`` on ``ranks - 1`` client ranks, 2 epochs; the results file."""
    result = mpirun(ranks, *command(*flags), "--results-dir", str(tmp_path), env={**PINNED, **(env or {})},
                    timeout=240)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "split.json").read_text())


def losses(run_):
    return [e[key] for e in run_["epochs"] for key in ("train_loss", "test_loss", "test_acc")]


# FedAvg's K clients on fewer ranks: tests/test_federated_learning.py (against one process); SplitFed V1's:
# tests/test_split_variants.py (against FedAvg); sync SGD's: tests/test_sync_sgd.py; the traffic of every variant
# on two client ranks against its closed form: tests/test_split_variants.py.

@needs_data
def test_passed_weights_give_the_same_run_within_a_rank_and_across_ranks_polling(tmp_path, on_one_client_rank):
    """Twelve clients on one rank (every hand-over a copy there) and on three ranks waiting as on several hosts
    (no doorbells; hand-overs 4 to 5, 8 to 9 and 12 to 1 are messages); the evaluation sample (3 of the 12 parts)
    alike."""
    one_rank = on_one_client_rank["passed"]
    three_ranks = run(4, tmp_path, *PASSED, env={"DOORBELLS": "off"})
    assert one_rank["placement"]["clients_per_rank"] == [12] and three_ranks["placement"]["clients_per_rank"] == [4] * 3
    assert three_ranks["environment"]["message_wait"] == "polling"
    assert losses(one_rank) == pytest.approx(losses(three_ranks), abs=1e-4)
    assert one_rank["evaluated_clients"] == three_ranks["evaluated_clients"]
    assert len(set(one_rank["evaluated_clients"])) == 3 and one_rank["evaluated_clients"][-1] == 12
    assert one_rank["final_client_test_acc"] == pytest.approx(three_ranks["final_client_test_acc"], abs=1e-4)
    def later_bytes(run_):  # the first epoch also carries the set-up, a message a rank
        return [e[key] for e in run_["epochs"][1:] for key in ("bytes_sent", "bytes_received")]
    # control messages carry numbers (timings, memory) whose digits vary: a few bytes a client (40 seen with 12)
    assert later_bytes(one_rank) == pytest.approx(later_bytes(three_ranks), abs=8 * 12)
    for key in ("client_flops", "client_bytes_sent", "client_bytes_received"):  # each data holder's work (work.py)
        assert one_rank["epochs"][1][key] == pytest.approx(three_ranks["epochs"][1][key], abs=16), key
    kinds = {(r["tag"], tuple(r["shape_per_example"])) for r in three_ranks["server_received"]}
    assert kinds == {("SMASHED", (6, 14, 14)), ("LABELS", ()), ("TURN_DONE", ())}  # nothing but the cut's


@needs_data
def test_u_shaped_clients_sharing_a_rank_give_the_same_run_as_on_two_ranks(tmp_path, on_one_client_rank):
    one_rank, two_ranks = on_one_client_rank["u-shaped"], run(3, tmp_path, *U_SHAPED)
    assert two_ranks["placement"]["clients_per_rank"] == [2, 2]
    assert losses(one_rank) == pytest.approx(losses(two_ranks), abs=1e-4)
    assert one_rank["epochs"][-1]["label_direction_acc"] == pytest.approx(
        two_ranks["epochs"][-1]["label_direction_acc"], abs=1e-6)


# ------------------------------------------------------------------ the scheduler of many clients on few ranks

class Status:
    def __init__(self, source, tag):
        self.source, self.tag = source, tag

    def Get_source(self):  # noqa: N802 (mpi4py's name)
        return self.source

    def Get_tag(self):  # noqa: N802
        return self.tag


class Ranks:
    """Stands in for the channel of ``take_turns``: each rank runs the clients it was started, one at a time and
    in the order they were started, and says when one is done; which rank answers next is ``random``'s choice."""

    def __init__(self, random):
        self.random, self.queued = random, {}

    def start(self, rank, client):
        self.queued.setdefault(rank, []).append(client)

    def probe(self, awaited):
        assert awaited == sorted(rank for rank, clients in self.queued.items() if clients)
        rank = self.random.choice(awaited)
        return Status(rank, 2)

    def finish(self, rank):
        return self.queued[rank].pop(0)


@given(ranks=st.integers(1, 6), more=st.integers(0, 200), at_once=st.integers(1, 6), ahead=st.integers(1, 3),
       random=st.randoms(use_true_random=False))
def test_every_client_takes_one_turn_on_its_rank_in_order_with_the_next_one_waiting_there(ranks, more, at_once,
                                                                                         ahead, random):
    placement, channel, started, ended = Placement(ranks + more, ranks), Ranks(random), [], []
    at_once = min(at_once, ranks)

    def start(client):
        rank = placement.rank_of(client)
        busy = [r for r, clients in channel.queued.items() if clients]
        assert len(channel.queued.get(rank, [])) < ahead  # at most `ahead` clients given to a rank at once
        assert rank in busy or len(busy) < at_once  # at most `at_once` ranks at work
        started.append(client)
        channel.start(rank, client)

    def done(client):
        rank = placement.rank_of(client)
        assert channel.finish(rank) == client  # a rank's message belongs to the oldest of its clients in their turn
        ended.append(client)
        # the rank's next client, if it has one, is already there: no round trip between two of its turns
        waiting = [k for k in placement.clients_on(rank) if k not in started]
        assert not waiting or channel.queued[rank] or ahead == 1
        return True

    take_turns(channel, placement.clients, at_once, start, {2: done}, placement.rank_of, ahead=ahead)
    assert sorted(started) == sorted(ended) == placement.clients
    for rank in range(1, ranks + 1):  # each rank ran its clients in their order
        assert [k for k in started if placement.rank_of(k) == rank] == placement.clients_on(rank)
