"""split_learning.py with something planted in its clients, for the tests of failures and of the protocol.

    mpirun -n 3 python tests/helpers/split_learning_planted.py PLANT [split_learning.py flags]

PLANT is one of:
  raise       rank 2 raises an exception in its first turn
  kill        rank 2 kills itself with SIGKILL in its first turn
  stop        rank 2 stops itself with SIGSTOP in its first turn (a hung data holder)
  pickle FILE every client ends its turn with a pickle in place of the JSON report: one that, unpickled, would
              create FILE
  save-fails  the server fails while it saves the trained parts, after the last epoch
  raw-images  every client sends raw images in place of cut-layer activations: as many as make a whole number
              of activations (3 images = 2 activations at cut layer 1)
  labels      every U-shaped client sends its turn's labels, as a vanilla client does
  record DIR  every client writes its state (weights and momentum) at the start and end of each turn to DIR
  gradient    the local-loss server sends the gradient at the cut back after each batch, as vanilla's does
"""

import contextlib
import math
import os
import pickle
import signal
import sys
from unittest import mock

import torch

import split_learning
from models import cut_shape, flatten
from splitlab.methods import local_loss, split_roles, split_variants
from splitlab.methods.mpi_method import run_mpi_main
from splitlab.net.protocol import SERVER, Tag

plant = sys.argv.pop(1)
Client = split_roles.Client
take_turn, start_turn, send_smashed = Client.take_turn, Client.start_turn, Client.send_smashed
u_shaped_start = split_variants.UShapedClient.start_turn


def faulty_turn(self, **command):
    if self.number == 2:
        if plant in ("kill", "stop"):
            os.kill(os.getpid(), signal.SIGKILL if plant == "kill" else signal.SIGSTOP)
        raise RuntimeError("planted fault in client 2")
    take_turn(self, **command)


class Exploit:
    """Unpickled, creates the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def report_with_pickle(self, **extra):
    payload = pickle.dumps(Exploit(exploit_file))
    self.channel._post_send(payload, len(payload), SERVER, Tag.TURN_DONE)


def failing_save(self):
    raise OSError("planted: the disk is full")


def send_raw_images(self, x):
    per_activation = math.prod(cut_shape(self.args.model, self.args.cut_layer))
    images = math.lcm(x[0].numel(), per_activation) // x[0].numel()
    self.channel.send(x[:images].cpu().numpy().copy(), SERVER, Tag.SMASHED)
    return self.client_part(x)


def send_labels(self, turn):
    self.channel.send(torch.cat([y for _, y in turn]).numpy(), SERVER, Tag.LABELS)
    u_shaped_start(self, turn)


def recording_turn(self, **command):
    self.record_path = os.path.join(folder, f"epoch{command['epoch']}-client{self.number}")
    take_turn(self, **command)
    torch.save(flatten(self.state), self.record_path + "-end.pt")


def recording_start(self, turn):  # called once a passed state has been loaded
    torch.save(flatten(self.state), self.record_path + "-start.pt")
    start_turn(self, turn)


PLANTS = {  # what each plant replaces: (class, method, replacement)
    "raise": [(Client, "take_turn", faulty_turn)], "kill": [(Client, "take_turn", faulty_turn)],
    "stop": [(Client, "take_turn", faulty_turn)], "pickle": [(Client, "report", report_with_pickle)],
    "save-fails": [(split_roles.Server, "save_parts", failing_save)],
    "raw-images": [(Client, "send_smashed", send_raw_images)],
    "labels": [(split_variants.UShapedClient, "start_turn", send_labels)],
    "record": [(Client, "take_turn", recording_turn), (Client, "start_turn", recording_start)],
    "gradient": [(local_loss.LocalLossServer, "returns_gradient", True)],
}
if plant not in PLANTS:
    sys.exit(f"unknown plant {plant!r}")
if plant == "pickle":
    exploit_file = sys.argv.pop(1)
elif plant == "record":
    folder = sys.argv.pop(1)
with contextlib.ExitStack() as planted:  # taken out again at the end: runs_in_one_job.py may run this helper again
    for owner, method, replacement in PLANTS[plant]:
        planted.enter_context(mock.patch.object(owner, method, replacement))
    run_mpi_main(split_learning.main)
