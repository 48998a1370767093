"""The messages that cross split learning's cut, coded (splitlab/training/codec.py): activations with
``--compress``'s codec, gradients with ``--compress-grad``'s (by default the same). One ``CutWire`` a rank: the
server's, and a client rank's for all of its clients (they run one at a time, and share its receive buffers)."""

import math

from splitlab.net.protocol import Tag
from splitlab.training import codec as codecs

ACTIVATIONS = (Tag.SMASHED, Tag.MIDDLE)  # coded with --compress
GRADIENTS = (Tag.CUT_GRAD, Tag.HEAD_GRAD)  # coded with --compress-grad


def codec_names(compress, compress_grad=None):
    """``(activations' codec, gradients' codec)`` of the flags' values: the gradients' is the activations' unless
    ``compress_grad`` names one."""
    up = codecs.parse(compress)[1]
    return up, up if compress_grad is None else codecs.parse(compress_grad, learned=False)[1]


class CutWire:
    """Sends a tensor across the cut as its codec's packed bytes, and receives one into a reused buffer."""

    def __init__(self, channel, compress="none", compress_grad=None):
        self.channel = channel
        up, down = codec_names(compress, compress_grad)
        self.codecs = {**{tag: codecs.codec(up) for tag in ACTIVATIONS},
                       **{tag: codecs.codec(down) for tag in GRADIENTS}}
        self.buffers = {}  # (tag, rows, values a row) -> receive buffer

    def send(self, tensor, dest, tag):
        """Send ``tensor`` ([examples, ...]) coded; returns the packed message (see ``seen``)."""
        packed = self.codecs[tag].encode(tensor)
        self.channel.send(packed, dest, tag)
        return packed

    def seen(self, packed, tag, shape):
        """What the receiver of ``packed`` computes on: the tensor of ``shape`` decoded from it."""
        return self.codecs[tag].decode(packed, shape)

    def recv(self, source, tag, shape):
        """Receive a coded tensor of ``shape`` ([examples, ...]) and decode it (on the CPU). A message of another
        size is a ProtocolError (messaging.Channel.recv). Without a codec the tensor is the receive buffer itself,
        reused by the next message of its size, as before codecs."""
        rows, n = shape[0], math.prod(shape[1:])
        key = (tag, rows, n)
        if key not in self.buffers:
            self.buffers[key] = self.codecs[tag].empty(rows, n)
        buffer = self.buffers[key]
        self.channel.recv(buffer, source, tag)
        return self.codecs[tag].decode(buffer, shape)
