"""The split-learning family beside vanilla split learning, each a server class and a client class.

    mpirun -n 11 python split_learning.py --variant u-shaped   # labels stay on the clients
    mpirun -n 11 python split_learning.py --variant sflv1      # SplitFed V1 (Thapa et al., AAAI 2022)
    mpirun -n 11 python split_learning.py --variant sflv2      # SplitFed V2

U-shaped: the client holds the layers up to the cut and the last ``--head-layers`` fully connected layers; the
server the middle. The server returns the activations that enter the head (MIDDLE), the client takes the loss
and returns their gradient (HEAD_GRAD). Clients take turns as in vanilla split learning; no label is sent.

SplitFed: every client trains its turn at the same time as the others (as many at once as
``process_policy.splitfed_clients_at_once`` allows), and after each epoch rank 0, which plays the fed server
too, averages the client parts (weighted by shard size) and sends the average to every client at the start of
the next. V1 keeps one copy of the server
part per client and averages the copies after each epoch, so it is FedAvg computed in two parts; V2 has one
server part that takes the clients' batches in the order they arrive (so a run with several clients depends
on timing, and is not repeatable to the digit). As in FedAvg, local momentum starts from zero every epoch.
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F

from models import flat_parameters, head_shape, load_flat_parameters, split_u_shaped
from splitlab.methods.averaging import OrderedAverage, weighted_average
from splitlab.methods.mpi_method import take_turns
from splitlab.methods.split_roles import Client, ClientRank, Server, batch_sizes, bottleneck_of, evaluation_batches
from splitlab.net import process_policy
from splitlab.net.protocol import SERVER, ProtocolError, Tag
from splitlab.training.loop import progress
from splitlab.training.steps import Scores, server_step, set_lr

# ------------------------------------------------------------------------------------------------ U-shaped

class UShapedClient(Client):
    """Holds the front and the head of the network, and its labels."""

    @staticmethod
    def make_parts(args):
        front, _, head = split_u_shaped(args.model, args.cut_layer, args.head_layers, args.seed, bottleneck_of(args))
        return [front, head]

    def __init__(self, number, shard, rank):
        super().__init__(number, shard, rank)
        self.head = self.parts[1]
        self.head_shape = head_shape(self.args.model, self.args.head_layers)

    def recv_middle(self, size):
        return self.wire.recv(SERVER, Tag.MIDDLE, (size, *self.head_shape)).to(self.device)

    def start_turn(self, turn):
        self.loss_sum, self.examples = 0.0, 0  # the labels stay here
        self.head_grads_sent, self.labels_kept = [], []  # to score the label attacks on (label_leakage.py)

    def train_batch(self, x, y):
        smashed = self.send_smashed(x)
        middle = self.recv_middle(len(x)).requires_grad_()
        loss = F.cross_entropy(self.head(middle), y.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        head_grad = middle.grad
        if self.args.grad_noise_std:  # the defence: noise on the gradient the server sees and steps with
            noise = torch.randn(head_grad.shape, generator=self.noise, device=self.device)
            head_grad = head_grad + self.args.grad_noise_std * noise
        self.wire.send(head_grad, SERVER, Tag.HEAD_GRAD)
        self.head_grads_sent.append(head_grad.cpu())
        self.labels_kept.append(y)
        self.backward_cut(smashed, x)
        self.loss_sum += loss.item() * len(y)
        self.examples += len(y)

    def end_turn(self):
        """Report the turn's loss, and what the server could read of its labels from the gradients it was sent
        (scored here, where the labels are)."""
        from splitlab.privacy.label_leakage import (
            label_leakage_report,  # here: its scipy takes a second to import, on every rank
        )
        with self.work.aside():  # the experimenter's measurement, not the client's work
            leak = label_leakage_report(torch.cat(self.head_grads_sent).numpy(), torch.cat(self.labels_kept).numpy(),
                                        seed=self.args.seed)
        self.turn_report(loss_sum=self.loss_sum, examples=self.examples, label_leakage=leak)

    @torch.no_grad()
    def evaluate(self, images):
        for part in self.parts:
            part.eval()
        scores = Scores(self.args.validation)
        for start, size in evaluation_batches(images, self.args.test_batch_size):
            self.send_smashed(self.x_test[start:start + size])
            target = self.y_test[start:start + size].to(self.device)
            scores.add(self.head(self.recv_middle(size)), target)
        self.report(scores=scores.sums(), leakage=self.evaluation_leakage(images))


class UShapedRank(ClientRank):
    client_class = UShapedClient


class UShapedServer(Server):
    """Holds the middle layers; never receives a label: the clients take the loss."""

    rank_class = UShapedRank

    @staticmethod
    def make_part(args):
        return split_u_shaped(args.model, args.cut_layer, args.head_layers, args.seed, bottleneck_of(args))[1]

    def __init__(self, channel, args, data, device, placement):
        super().__init__(channel, args, data, device, placement)
        self.head_shape = head_shape(args.model, args.head_layers)

    def train_epoch(self, epoch, lr):
        """Vanilla's epoch, and the label attacks' scores over the epoch's turns (each client's weighted by its
        shard)."""
        self.label_leakage = []
        record = super().train_epoch(epoch, lr)
        scored = [(leak, n) for leak, n in zip(self.label_leakage, self.shard_sizes) if leak]
        for key in sorted({key for leak, _ in scored for key in leak}):
            record[key] = float(np.average([leak[key] for leak, _ in scored], weights=[n for _, n in scored]))
        return record

    def train_turn(self, client, bar):
        for size in batch_sizes(self.shard_sizes[client - 1], self.args.batch_size):
            with self.work.batch(size):
                smashed = self.recv_smashed(client, size).requires_grad_()
                middle = self.server_part(smashed)
                self.wire.send(middle.detach(), self.rank_of(client), Tag.MIDDLE)
                head_grad = self.recv_cut(client, Tag.HEAD_GRAD, (size, *self.head_shape))
                self.optimizer.zero_grad(set_to_none=True)
                middle.backward(head_grad)
                self.optimizer.step()
            self.wire.send(smashed.grad, self.rank_of(client), Tag.CUT_GRAD)
            bar.update()
        report = self.finish_turn(client)
        self.label_leakage.append(report.pop("label_leakage"))
        return report.pop("loss_sum"), report.pop("examples"), report

    @torch.no_grad()
    def evaluate_client(self, client, images=None):
        self.server_part.eval()
        images = images or self.num_test
        self.command(client, Tag.EVALUATE, images=images)
        for size in batch_sizes(images, self.args.test_batch_size):
            middle = self.server_part(self.recv_smashed(client, size))
            self.wire.send(middle, self.rank_of(client), Tag.MIDDLE)
        report = self.finish_turn(client)
        scores = Scores(self.args.validation)
        scores.merge(report.pop("scores"))
        return scores.result(), report


# ------------------------------------------------------------------------------------------------ SplitFed

class SplitFedClient(Client):
    """Sends its client part back at the end of its turn; takes the average from its rank (SplitFedRank)."""

    commands = {Tag.TURN: "take_turn", Tag.EVALUATE: "evaluate", Tag.EXPORT: "export"}

    @staticmethod
    def plan(host, num_ranks):
        return process_policy.splitfed_client(host, num_ranks)

    def take_turn(self, epoch, lr):
        for state in self.optimizer.state.values():  # FedAvg's rule: momentum starts from zero every round
            state["momentum_buffer"].zero_()
        super().take_turn(epoch, lr)

    def end_turn(self):
        self.channel.send(flat_parameters(self.client_part).cpu().numpy(), SERVER, Tag.UPDATE)
        self.turn_report()


class SplitFedRank(ClientRank):
    """Receives the averaged client part once and gives it to each of its clients: each counts it received, as
    it would between separate data holders."""

    client_class = SplitFedClient

    def __init__(self, channel, args, data, device, placement):
        super().__init__(channel, args, data, device, placement)
        self.average = torch.empty(sum(p.numel() for p in self.initial_parts[0].parameters()))
        self.handlers[Tag.GLOBAL_MODEL] = self.take_average

    def take_average(self):
        self.channel.recv(self.average.numpy(), SERVER, Tag.GLOBAL_MODEL)
        for client in self.clients.values():
            load_flat_parameters(client.client_part, self.average.to(self.device))
        self.channel.count_unsent(0, self.average.nbytes * (len(self.clients) - 1))


class SplitFedServer(Server):
    """Serves the batches of several clients at once (``take_turns``) and averages the client parts at the end
    of every epoch. The subclasses say which server part a client's batches train."""

    rank_class = SplitFedRank

    @staticmethod
    def plan(host, num_ranks):
        return process_policy.splitfed_server(host)

    def __init__(self, channel, args, data, device, placement):
        super().__init__(channel, args, data, device, placement)
        self.num_ranks = placement.num_ranks
        self.update_buf = torch.empty(sum(p.numel() for p in Client.make_parts(args)[0].parameters()))
        self.turns = {}  # this epoch: client -> its Turn

    def server_part_of(self, client):
        """The server part and optimizer that train on ``client``'s batches."""
        raise NotImplementedError

    def start_epoch(self, lr):
        raise NotImplementedError

    def train_epoch(self, epoch, lr):
        self.start_epoch(lr)
        self.turns, self.loss_sum = {}, 0.0
        total = sum(len(batch_sizes(n, self.args.batch_size)) for n in self.shard_sizes)
        with progress(self.args, None, total, f"epoch {epoch}") as self.bar, self.work.active():
            take_turns(self.channel, self.clients,
                       process_policy.splitfed_clients_at_once(self.channel.host, self.num_ranks),
                       lambda client: self.start_turn(client, epoch, lr),
                       {Tag.LABELS: self.take_labels, Tag.SMASHED: self.train_batch, Tag.UPDATE: self.take_update,
                        Tag.TURN_DONE: self.end_turn}, self.rank_of)
            self.average([self.turns[c].update for c in self.clients])
        reports = [self.turns[c].report for c in self.clients]
        return {"train_loss": self.loss_sum / sum(self.shard_sizes), **self.traffic(reports),
                **self.epoch_work(reports)}

    def start_turn(self, client, epoch, lr):
        self.turns[client] = Turn(client)
        self.command(client, Tag.TURN, epoch=epoch, lr=lr)

    def take_labels(self, client):
        turn = self.turns[client]
        turn.expect(turn.labels is None, "LABELS")
        shard = self.shard_sizes[client - 1]
        turn.labels = self.recv(client, Tag.LABELS, torch.empty(shard, dtype=torch.int64))
        turn.batches = iter(enumerate(batch_sizes(shard, self.args.batch_size)))

    def train_batch(self, client):
        turn = self.turns[client]
        turn.expect(turn.labels is not None, "SMASHED")
        index, size = next(turn.batches, (None, 0))
        if index is None:
            raise ProtocolError(f"client {client} sent more batches than its shard has")
        start = index * self.args.batch_size
        part, optimizer = self.server_part_of(client)
        with self.work.batch(size):
            loss, cut_grad = server_step(part, optimizer, self.recv_smashed(client, size),
                                         turn.labels[start:start + size])
        self.wire.send(cut_grad, self.rank_of(client), Tag.CUT_GRAD)
        self.loss_sum += loss.item() * size
        self.bar.update()

    def take_update(self, client):
        turn = self.turns[client]
        turn.expect(turn.labels is not None and next(turn.batches, None) is None and turn.update is None, "UPDATE")
        turn.update = self.recv(client, Tag.UPDATE, self.update_buf).clone()

    def end_turn(self, client):
        turn = self.turns[client]
        turn.expect(turn.update is not None, "TURN_DONE")
        turn.report = self.finish_turn(client)
        return True

    def average(self, client_parts):
        """The fed server's step: average the client parts by shard size; every client gets the average at
        once (so that the evaluation after the epoch sees it): one message a rank, counted once a client."""
        average = weighted_average(client_parts, self.shard_sizes)
        for rank in range(1, self.num_ranks + 1):
            self.channel.send(average.numpy(), rank, Tag.GLOBAL_MODEL)
        self.channel.count_unsent(average.nbytes * (len(self.clients) - self.num_ranks), 0)


class Turn:
    """What the server has of one client's SplitFed turn so far."""

    def __init__(self, client):
        self.client, self.labels, self.batches, self.update, self.report = client, None, None, None, None

    def expect(self, in_order, what):
        if not in_order:
            raise ProtocolError(f"server got {what} from client {self.client} out of turn order")


class SplitFedV1Server(SplitFedServer):
    """V1: a copy of the server part for each client, averaged with the client parts: FedAvg computed in two parts.
    A client's copy lives for its turn (from the average, with fresh momentum, as in FedAvg) and is folded into
    the epoch's average when the turn ends, so that the server holds as many copies as clients in their turn."""

    def start_epoch(self, lr):
        self.lr, self.copies = lr, {}
        self.server_average = OrderedAverage(self.clients, self.shard_sizes)

    def start_turn(self, client, epoch, lr):
        part = copy.deepcopy(self.server_part).train()
        optimizer = type(self.optimizer)(part.parameters(), **self.optimizer.defaults)
        set_lr(optimizer, lr)
        self.copies[client] = part, optimizer
        super().start_turn(client, epoch, lr)

    def server_part_of(self, client):
        return self.copies[client]

    def end_turn(self, client):
        part, _ = self.copies.pop(client)
        self.server_average.add(client, flat_parameters(part))
        return super().end_turn(client)

    def average(self, client_parts):
        super().average(client_parts)
        load_flat_parameters(self.server_part, self.server_average.result().to(self.device))


class SplitFedV2Server(SplitFedServer):
    """V2: one server part, which takes the clients' batches in the order they arrive."""

    def server_part_of(self, client):
        return self.server_part, self.optimizer

    def start_epoch(self, lr):
        set_lr(self.optimizer, lr)
        self.server_part.train()
