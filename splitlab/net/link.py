"""A network link's model: messages take their turn on it, each for size / bandwidth, and arrive a latency after
their last byte left. The messaging layer emulates it (``LINK=``); the cost tools compute with it."""

import re

RATES = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}  # a second
DURATIONS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _quantity(text, units):
    """``<number><unit>`` with a unit of ``units``, in that unit's base; None if ``text`` is not one."""
    found = re.fullmatch(rf"\s*([0-9.]+)\s*({'|'.join(units)})\s*", text.lower())
    return float(found[1]) * units[found[2]] if found else None


def seconds(text):
    """A duration such as ``10ms``, ``500us`` or ``0.1s``, in seconds; ValueError, naming the form, if not one."""
    value = _quantity(text, DURATIONS)
    if value is None:
        raise ValueError(f"{text!r} is not a latency such as 10ms, 500us or 0.1s")
    return value


def bits_per_second(text):
    """A bandwidth such as ``10mbit`` or ``1gbit``, in bits a second; ValueError, naming the form, if not one."""
    value = _quantity(text, RATES)
    if not value:
        raise ValueError(f"{text!r} is not a bandwidth such as 10mbit or 1gbit (bit, kbit, mbit or gbit a second)")
    return value


class Link:
    """An emulated network link out of this rank (``LINK=<bandwidth>,<latency>``: for example ``10mbit,20ms``,
    ``1gbit,1ms``): messages take their turn on it, each for size / bandwidth, and arrive ``latency`` after
    their last byte left. A message is handed to MPI at that moment."""

    def __init__(self, bits_per_s, latency_s):
        self.bits_per_s, self.latency_s = bits_per_s, latency_s
        self.free_at = 0.0  # when the link has sent everything handed to it so far

    @classmethod
    def parse(cls, text):
        """A Link from ``LINK``'s text; ValueError, naming the form, if it is not ``<number><unit>,<number><unit>``."""
        rate, _, latency = text.partition(",")
        bits_per_s, latency_s = _quantity(rate, RATES), _quantity(latency, DURATIONS)
        if not bits_per_s or latency_s is None:
            raise ValueError(f"LINK={text!r}: expected <bandwidth>,<latency> such as 10mbit,20ms "
                             f"(bandwidth in bit, kbit, mbit or gbit a second; latency in s, ms or us)")
        return cls(bits_per_s, latency_s)

    def arrival(self, nbytes, now):
        """When a message of ``nbytes`` handed to the link at ``now`` arrives."""
        self.free_at = max(now, self.free_at) + 8 * nbytes / self.bits_per_s
        return self.free_at + self.latency_s
