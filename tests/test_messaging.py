"""The MPI messaging layer (messaging.Channel): what arrives, and that no wake-up is lost."""

import pytest

from conftest import mpirun


@pytest.mark.parametrize("ranks, poll, bells", [(2, ["0", "0"], "on"), (4, ["0", "0"], "on"), (3, ["0", "3600"], "on"),
                                                (3, ["3600", "0"], "on"), (4, ["0", "0"], "off")],
                         ids=["2 ranks", "4 ranks", "clients poll", "rank 0 polls", "no doorbells"])
def test_messages_arrive_intact_and_no_wake_up_is_lost(ranks, poll, bells):
    # The helper sleeps for up to an hour between looks unless rung: a missed doorbell shows as a time-out.
    # With one side polling for an hour, the other sleeps: it must be rung before the poller polls on.
    result = mpirun(ranks, "tests/helpers/channel_turns.py", *poll, timeout=120, env={"DOORBELLS": bells})
    assert result.returncode == 0, result.stderr
    assert "all turns done" in result.stdout
    # MPICH warns at exit about requests never completed: every send must be delivered and freed first.
    assert "pending" not in result.stderr


def ping_pong_round_trips(sleep_after, work, rounds=60):
    """Two ranks without doorbells answer each other's message after ``work`` seconds; each notices a message
    at its first look after it arrived, looking again after ``sleep_after(seconds waited)``. The round trips
    one of them sees (from its send to noticing the answer, the other's work included), in seconds."""
    def noticed(waiting_since, arrival):
        looked = waiting_since
        while looked < arrival:
            looked += sleep_after(looked - waiting_since)
        return looked

    sent, other_waiting_since, trips = 0.0, 0.0, []
    for _ in range(rounds):
        answered = noticed(other_waiting_since, sent) + work  # the other rank answers; then waits again
        trips.append(noticed(sent, answered) - sent)
        sent, other_waiting_since = trips[-1] + sent + work, answered
    return trips


@pytest.mark.parametrize("work", [1e-3, 3e-3, 10e-3])
def test_ranks_without_doorbells_do_not_lengthen_each_others_waits(work):
    # With a sleep that doubled (as one with doorbells may), two ranks with DOORBELLS=off measured 326 ms
    # hand-overs for 3 ms of work a side (benchmarks/ping_pong.py); in this model it gives 2.7x and 3.2x the
    # work (3 and 10 ms), more than the 1.5x allowed.
    from splitlab.net.messaging import no_bells_sleep
    trips = ping_pong_round_trips(no_bells_sleep, work)
    assert max(trips[10:]) < 1.5 * work
