"""What crosses the wire, compressed: the codecs of split learning's activations and gradients at the cut and of
FedAvg's updates (``--compress``, ``--compress-grad``).

    none       float32, 4 bytes a value: the report's messages, unchanged
    int8       affine quantisation of each row: its least and greatest value (float32 each), then one byte a value,
               rounded to the nearest of 255 equal steps between them; at most half a step off
    int4       the same with 15 steps, two values a byte
    topk:F     each row's ceil(F n) entries of largest magnitude, exact (float32), with their positions (uint16,
               uint32 past 65,536 values a row); the rest zero

A tensor is coded row by row: activations and gradients one row an example ([B, ...] -> [B, n]: an example's scale
is its own, and a message's bytes grow with its examples alone), a FedAvg update one row a parameter tensor.
Rounding is to the nearest step (no random draws: a run repeats to the digit and gives the same numbers on any
placement). What is sent is the packed bytes (``encode``), not float32 with a flag.

Training through a codec: the receiver computes on the decoded values, and the gradient it returns is taken as the
gradient of the values the sender computed (a straight-through estimator, Bengio et al. 2013). Rounding and
dropping entries have a zero or undefined derivative almost everywhere, so the identity is the usable choice, and
it is what the quantised and sparsified split-learning papers train with (C3-SL, SplitFC, FedLite).

The learned option, ``bottleneck:C`` (alone or before a codec: ``bottleneck:2+int4``), is a change of the network,
not a codec: a 1x1 convolution down to C channels ends the client part, and one back up (with ReLU) begins the
server part, both trained with the rest (BottleNet, C3-SL's idea of a learned reduction at the cut; models.split).
"""

import math

import numpy as np
import torch

CODECS = "none, int8, int4, topk:F with 0 < F < 1"
FORMS = f"{CODECS}, or bottleneck:C (C channels at the cut, C >= 1), alone or before one of them: bottleneck:2+int4"
BITS = {"int8": 8, "int4": 4}
HEADER = np.dtype(np.float32).itemsize * 2  # a quantised row's least and greatest value


class SpecError(ValueError):
    """A --compress value that is not one of the accepted forms."""


def parse(text, learned=True):
    """``(bottleneck channels or None, codec name)`` of a --compress value; ``learned``: whether a bottleneck may
    be asked for (not of a FedAvg update, which has no cut). SpecError names the accepted forms."""
    text = text.strip().lower()
    head, _, rest = text.partition("+")
    bottleneck = None
    if head.startswith("bottleneck:"):
        if not learned:
            raise SpecError(f"{text!r}: a bottleneck changes the network at the cut; accepted here: {CODECS}")
        try:
            bottleneck = int(head.split(":", 1)[1])
        except ValueError:
            bottleneck = 0
        if bottleneck < 1:
            raise SpecError(f"{text!r}: bottleneck:C needs a whole number of channels C >= 1; accepted: {FORMS}")
        text = rest or "none"
    elif rest:
        raise SpecError(f"{text!r}: only a bottleneck may come before a codec; accepted: {FORMS}")
    name = text
    if name in ("none", *BITS):
        return bottleneck, name
    if name.startswith("topk:"):
        try:
            share = float(name[5:])
        except ValueError:
            share = math.nan
        if 0 < share < 1:
            return bottleneck, f"topk:{share:g}"
    raise SpecError(f"unknown codec {name!r}; accepted: {FORMS if learned else CODECS}")


def normalised(text, learned=True):
    """A --compress value as a run records it: ``parse``'s parts written back (``topk:0.10`` -> ``topk:0.1``,
    ``bottleneck:2+none`` -> ``bottleneck:2``)."""
    bottleneck, name = parse(text, learned)
    return name if bottleneck is None else f"bottleneck:{bottleneck}" + ("" if name == "none" else f"+{name}")


def codec(name):
    """The codec called ``name`` (``parse``'s second value)."""
    if name == "none":
        return Float32()
    if name in BITS:
        return Quantised(BITS[name])
    return TopK(float(name.split(":")[1]))


class Float32:
    """No compression: the rows as float32, as the suite sent them before codecs (the same bytes, the same
    numbers to the digit: the decoded tensor is the received buffer itself)."""

    name = "none"

    def row_bytes(self, n):
        return 4 * n

    def encode(self, x):
        """The packed message of ``x`` ([rows, ...]): here the float32 values themselves."""
        return x.detach().cpu().numpy()

    def empty(self, rows, n):
        """A receive buffer for a message of ``rows`` rows of ``n`` values."""
        return np.empty((rows, n), dtype=np.float32)

    def decode(self, packed, shape):
        """The tensor of ``shape`` ([rows, ...]) that ``packed`` encodes."""
        return torch.from_numpy(packed).reshape(shape)


class Packed:
    """A codec whose message is one uint8 buffer; subclasses say how a row is laid out."""

    def empty(self, rows, n):
        return np.empty(rows * self.row_bytes(n), dtype=np.uint8)

    def encode(self, x):
        rows = x.detach().reshape(len(x), -1).cpu()
        return self.pack(rows).reshape(-1)

    def decode(self, packed, shape):
        rows, n = shape[0], math.prod(shape[1:])
        return self.unpack(packed.reshape(rows, self.row_bytes(n)), n).reshape(shape)


class Quantised(Packed):
    """Affine quantisation of each row to ``bits`` (8 or 4) bits, nearest rounding."""

    def __init__(self, bits):
        self.bits, self.levels, self.name = bits, 2 ** bits - 1, f"int{bits}"

    def row_bytes(self, n):
        return HEADER + math.ceil(n * self.bits / 8)

    def pack(self, rows):
        x = rows.numpy().astype(np.float64)  # float64: the span of two float32 values never overflows, nor loses a step
        lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
        step = (hi - lo) / self.levels
        inverse = np.divide(1.0, step, out=np.zeros_like(step), where=step > 0)  # a constant row: every code 0
        codes = np.minimum(np.rint((x - lo) * inverse), self.levels).astype(np.uint8)
        if self.bits == 4:
            if codes.shape[1] % 2:
                codes = np.pad(codes, ((0, 0), (0, 1)))
            codes = codes[:, 0::2] | (codes[:, 1::2] << 4)
        header = np.concatenate([lo, hi], 1).astype(np.float32).view(np.uint8)
        return np.concatenate([header, codes], 1)

    def unpack(self, rows, n):
        span = np.ascontiguousarray(rows[:, :HEADER]).view(np.float32).astype(np.float64)
        lo, hi = span[:, :1], span[:, 1:]
        codes = rows[:, HEADER:]
        if self.bits == 4:
            codes = np.stack([codes & 15, codes >> 4], 2).reshape(len(rows), -1)[:, :n]
        values = lo + codes * ((hi - lo) / self.levels)
        return torch.from_numpy(np.clip(values, lo, hi).astype(np.float32))  # within the row's span: no overflow


class TopK(Packed):
    """The ceil(``share`` n) entries of largest magnitude of each row, exact, with their positions."""

    def __init__(self, share):
        self.share, self.name = share, f"topk:{share:g}"

    def kept(self, n):
        return max(1, math.ceil(self.share * n))

    @staticmethod
    def index_type(n):
        return np.uint16 if n <= 2 ** 16 else np.uint32

    def row_bytes(self, n):
        return self.kept(n) * (4 + np.dtype(self.index_type(n)).itemsize)

    def pack(self, rows):
        x = rows.numpy().astype(np.float32, copy=False)
        n, k = x.shape[1], self.kept(x.shape[1])
        positions = np.argpartition(-np.abs(x), k - 1, axis=1)[:, :k]  # the k largest magnitudes, in no order
        values = np.take_along_axis(x, positions, 1)
        return np.concatenate([values.view(np.uint8), positions.astype(self.index_type(n)).view(np.uint8)], 1)

    def unpack(self, rows, n):
        k = self.kept(n)
        values = np.ascontiguousarray(rows[:, :4 * k]).view(np.float32)
        positions = np.ascontiguousarray(rows[:, 4 * k:]).view(self.index_type(n)).astype(np.int64)
        dense = np.zeros((len(rows), n), np.float32)
        np.put_along_axis(dense, positions, values, 1)
        return torch.from_numpy(dense)


# ------------------------------------------------------------------------------------------ FedAvg's updates

def encode_tensors(codec, tensors):
    """One message of ``tensors`` (a model's parameters, say), each coded as one row."""
    return np.concatenate([codec.encode(t.reshape(1, -1)).view(np.uint8).reshape(-1) for t in tensors])


def decode_tensors(codec, packed, sizes):
    """The flat float32 tensor of the tensors of ``sizes`` values each that ``encode_tensors`` packed."""
    parts, start = [], 0
    for n in sizes:
        size = codec.row_bytes(n)
        raw = np.ascontiguousarray(packed[start:start + size])
        parts.append(codec.decode(raw.view(np.float32) if codec.name == "none" else raw, (1, n)).reshape(-1))
        start += size
    if start != len(packed):
        raise ValueError(f"{len(packed)} bytes for tensors that pack to {start}")
    return torch.cat(parts)


def tensors_bytes(codec, sizes):
    """The bytes ``encode_tensors`` makes of tensors of ``sizes`` values."""
    return sum(codec.row_bytes(n) for n in sizes)
