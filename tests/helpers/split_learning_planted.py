"""split_learning.py with something planted in its clients, for the tests of failures and of the protocol.

    mpirun -n 3 python tests/helpers/split_learning_planted.py PLANT [split_learning.py flags]

PLANT is one of:
  raise       rank 2 raises an exception in its first turn
  kill        rank 2 kills itself with SIGKILL in its first turn
  raw-images  every client sends raw images in place of cut-layer activations: as many as make a whole number
              of activations (3 images = 2 activations at cut layer 1)
  labels      every U-shaped client sends its turn's labels, as a vanilla client does
  record DIR  every client writes its state (weights and momentum) at the start and end of each turn to DIR
"""

import math
import os
import signal
import sys

import torch

import split_learning
import split_variants
from models import CUT_SHAPES, flatten
from mpi_method import run_mpi_main
from protocol import SERVER, Tag

plant = sys.argv.pop(1)
Client = split_learning.Client
take_turn, start_turn, send_smashed = Client.take_turn, Client.start_turn, Client.send_smashed


def faulty_turn(self, **command):
    if self.channel.rank == 2:
        if plant == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("planted fault in client 2")
    take_turn(self, **command)


def send_raw_images(self, x):
    per_activation = math.prod(CUT_SHAPES[self.args.cut_layer])
    images = math.lcm(x[0].numel(), per_activation) // x[0].numel()
    self.channel.send(x[:images].cpu().numpy().copy(), SERVER, Tag.SMASHED)
    return self.client_part(x)


def send_labels(self, turn):
    self.channel.send(torch.cat([y for _, y in turn]).numpy(), SERVER, Tag.LABELS)
    self.loss_sum, self.examples = 0.0, 0


def recording_turn(self, **command):
    self.record_path = os.path.join(folder, f"epoch{command['epoch']}-client{self.channel.rank}")
    take_turn(self, **command)
    torch.save(flatten(self.state), self.record_path + "-end.pt")


def recording_start(self, turn):  # called once a passed state has been loaded
    torch.save(flatten(self.state), self.record_path + "-start.pt")
    start_turn(self, turn)


if plant in ("raise", "kill"):
    Client.take_turn = faulty_turn
elif plant == "raw-images":
    Client.send_smashed = send_raw_images
elif plant == "labels":
    split_variants.UShapedClient.start_turn = send_labels
elif plant == "record":
    folder = sys.argv.pop(1)
    Client.take_turn, Client.start_turn = recording_turn, recording_start
else:
    sys.exit(f"unknown plant {plant!r}")
run_mpi_main(split_learning.main)
