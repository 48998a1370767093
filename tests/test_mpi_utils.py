"""The MPI messaging layer (mpi_utils.Channel): what arrives, and that no wake-up is lost."""

import pytest

from conftest import mpirun


@pytest.mark.parametrize("ranks, poll", [(2, ["0", "0"]), (4, ["0", "0"]), (3, ["0", "3600"]), (3, ["3600", "0"])],
                         ids=["2 ranks", "4 ranks", "clients poll", "rank 0 polls"])
def test_messages_arrive_intact_and_no_wake_up_is_lost(ranks, poll):
    # The helper sleeps for up to an hour between looks unless rung: a missed doorbell shows as a time-out.
    # With one side polling for an hour, the other sleeps: it must be rung before the poller polls on.
    result = mpirun(ranks, "tests/helpers/channel_turns.py", *poll, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "all turns done" in result.stdout
    # MPICH warns at exit about requests never completed: every send must be delivered and freed first.
    assert "pending" not in result.stderr
