"""Time over a network: the emulated link (messaging.Link, ``LINK=``) holds every message back as a link of its
bandwidth and latency would, and link_estimate.py's replay of a plain run's trace gives back the run's own times
with no link and adds exactly the link's delays to a chain of messages that wait on each other."""

import pytest

from conftest import PINNED, mpirun_each, needs_data
from link_estimate import load_traces, match_messages, replay, span
from splitlab.net.link import Link, bits_per_second


def ping_pong(rounds, nbytes, compute):
    """Two ranks' traces: rank 0 sends ``nbytes`` to rank 1, which computes ``compute`` seconds and answers; the
    messages on this machine take no time."""
    zero, one, now = [], [], 0.0
    for _ in range(rounds):
        zero.append(("send", 1, 5, now, now, nbytes))
        one.append(("recv", 0, 5, now, now, nbytes))
        now += compute
        one.append(("send", 0, 6, now, now, nbytes))
        zero.append(("recv", 1, 6, zero[-1][4], now, nbytes))
    return {0: zero, 1: one}


def test_with_no_link_the_replay_gives_back_the_measured_times():
    traces = ping_pong(3, 1000, 0.5)
    assert replay(traces) == {rank: [event[4] for event in events] for rank, events in traces.items()}


def test_a_chain_of_messages_pays_latency_and_size_over_bandwidth_for_each():
    traces, rounds = ping_pong(4, 125_000, 0.5), 4  # 125,000 bytes: 1 Mbit a message
    link = (10e6, 0.02)  # 10 Mbit/s, 20 ms: 0.1 s + 0.02 s a message
    assert span(traces, replay(traces, link)) == pytest.approx(span(traces) + 2 * rounds * 0.12)


def test_messages_from_one_rank_take_their_turn_on_its_link():
    """Rank 0 sends to two ranks at once: the second message leaves once the first has."""
    traces = {0: [("send", 1, 5, 0.0, 0.0, 125_000), ("send", 2, 5, 0.0, 0.0, 125_000)],
              1: [("recv", 0, 5, 0.0, 0.0, 125_000)], 2: [("recv", 0, 5, 0.0, 0.0, 125_000)]}
    ends = replay(traces, (10e6, 0.02))
    assert ends[1] == [pytest.approx(0.12)] and ends[2] == [pytest.approx(0.22)]


def test_an_emulated_link_sends_one_message_after_another_each_for_its_size_over_the_bandwidth():
    link = Link(8e6, 0.01)  # a megabyte a second, 10 ms
    assert link.arrival(1_000_000, now=0.0) == pytest.approx(1.01)  # a second on the wire, then the latency
    assert link.arrival(500_000, now=0.5) == pytest.approx(1.51)  # waits for the first to leave at 1.0
    assert link.arrival(0, now=3.0) == pytest.approx(3.01)  # the link was free again


def test_link_settings_are_read_or_refused_with_the_form():
    link = Link.parse("10mbit,20ms")
    assert (link.bits_per_s, link.latency_s) == (10e6, 0.02)
    assert (Link.parse("1gbit, 500us").bits_per_s, Link.parse("1gbit,500us").latency_s) == (1e9, 5e-4)
    for wrong in ("10mb", "10mbit", "0mbit,1ms", "10mbit,20ms,5ms", ",20ms"):
        with pytest.raises(ValueError, match="such as 10mbit,20ms"):
            Link.parse(wrong)


def test_a_bandwidth_is_read_in_bits_a_second_or_refused_with_the_form():
    assert bits_per_second("10mbit") == 1e7 and bits_per_second("1.5 Gbit") == 1.5e9
    assert bits_per_second("800kbit") == 8e5 and bits_per_second("64bit") == 64
    for text in ("10mbps", "0mbit", "fast"):
        with pytest.raises(ValueError, match=f"{text!r} is not a bandwidth such as 10mbit or 1gbit"):
            bits_per_second(text)


@needs_data
def test_an_emulated_link_delays_every_message_and_the_replay_matches_the_plain_run(tmp_path):
    """Split learning with one client over a link of 100 ms: each message the server receives ends at least 100 ms
    after its send began, and without the link most take far less (how much less follows the machine's speed, so
    only the median is held); the replay of the plain run gives back its own times."""
    flags = ["--epochs", "1", "--train-subset", "128", "--test-subset", "50", "--patience", "0", "--no-progress",
             "--leakage-images", "0"]
    runs = {name: [*link, f"CHANNEL_TRACE={tmp_path / name}", "split_learning.py", *flags, "--results-dir",
                   str(tmp_path / name)] for name, link in (("plain", []), ("link", ["LINK=1gbit,100ms"]))}
    job = mpirun_each(2, runs.values(), timeout=120, env=PINNED)
    assert job.returncode == 0, job.stderr
    plain, emulated = load_traces(tmp_path / "plain"), load_traces(tmp_path / "link")
    replayed = replay(plain)
    for rank, events in plain.items():
        assert replayed[rank] == pytest.approx([event[4] for event in events], abs=1e-6)
    through_link, plain_delays = server_delays(emulated), server_delays(plain)
    assert len(through_link) == len(plain_delays) >= 8
    assert through_link[0] >= 0.1 > plain_delays[len(plain_delays) // 2]


def server_delays(traces):
    """Sorted, each message rank 0 received: the end of its receive less the start of its send."""
    return sorted(traces[0][i][4] - traces[peer][j][3]
                  for (rank, i), (peer, j) in match_messages(traces).items() if rank == 0)
