"""Local-loss split learning (Han, Lin and Wang 2021): each client trains its part on a loss of its own, taken by a
small auxiliary head (one fully connected layer from the activations at the cut to the classes), and sends its
activations and labels; the server trains the rest on them. No gradient comes back, so a client never waits for
the server between batches: it sends batch after batch while the server works through them.

    mpirun -n 11 python split_learning.py --variant local-loss
    mpirun -n 11 python split_learning.py --variant local-loss --compress int8

Clients take turns as in vanilla split learning (the server part trains on one client's batches after another);
the messages are vanilla's without CUT_GRAD (protocol.py). A gradient sent to a client is a ProtocolError there:
a client has no handler for one. The auxiliary head stays with the client, is saved with its part, and is not
used at evaluation: the model evaluated is the client part followed by the server part, as in vanilla.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from models import cut_shape, split
from splitlab.methods.split_roles import Client, ClientRank, Server, bottleneck_of
from splitlab.net import process_policy
from splitlab.privacy.leakage import distance_correlation

CLASSES = 10


def auxiliary_head(args):
    """The client's auxiliary head: the activations it sends, flattened, to one logit a class; He-initialised
    from the run's seed."""
    features = math.prod(cut_shape(args.model, args.cut_layer, bottleneck_of(args)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        layer = nn.Linear(features, CLASSES)
    nn.init.zeros_(layer.bias)
    return nn.Sequential(nn.Flatten(), layer)


class LocalLossClient(Client):
    """Holds the layers up to the cut and its auxiliary head; steps them on its own loss after each batch sent."""

    @staticmethod
    def make_parts(args):
        return [split(args.model, args.cut_layer, args.seed, bottleneck_of(args))[0], auxiliary_head(args)]

    @staticmethod
    def plan(host, num_ranks):
        return process_policy.local_loss(host)

    def train_batch(self, x, y):
        smashed = self.send_smashed(x)  # sent first: the server works on it while this client steps
        loss = F.cross_entropy(self.parts[1](smashed), y.to(self.device))
        if self.args.nopeek:
            loss = loss + self.args.nopeek * distance_correlation(x, smashed)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class LocalLossRank(ClientRank):
    client_class = LocalLossClient


class LocalLossServer(Server):
    """Vanilla's server, which returns no gradient: it steps its part on each batch and waits for the next."""

    rank_class = LocalLossRank
    returns_gradient = False

    @staticmethod
    def plan(host, num_ranks):
        return process_policy.local_loss(host)
