"""The roles of vanilla split learning: the server, which holds the layers after the cut, and the client, which
holds the layers up to it and one shard of the training data (split_learning.py runs them; the variants in
split_variants.py subclass them).

Clients take turns; in its turn a client runs through its shard in mini-batches: forward to the cut, send the
activations ("smashed" data), the server finishes the forward pass with the labels it was sent, takes the loss,
steps its layers and sends back the gradient at the cut, and the client finishes the backward pass and steps its
layers. Every message is laid out in protocol.py.
"""

import copy
import time
from pathlib import Path

import numpy as np
import torch

from data import batches, num_batches, shuffle_generator
from models import cut_shape, flat_parameters, flatten, split, unflatten_into
from splitlab.training.codec import parse as parse_compress
from splitlab.costs.work import Work, epoch_keys, peak_rss_mb
from splitlab.methods.cut import CutWire
from splitlab.methods.mpi_method import per_client, stop_workers
from splitlab.net import process_policy
from splitlab.net.protocol import SERVER, ProtocolError, Tag, tag_name
from splitlab.privacy.leakage import distance_correlation, leakage_report
from splitlab.training.checkpoint import restore, snapshot
from splitlab.training.loop import progress
from splitlab.training.results_guard import atomic_path
from splitlab.training.steps import Scores, client_backward, server_step, set_lr, sgd


def bottleneck_of(args):
    """The channels of --compress's bottleneck at the cut, or None (codec.py)."""
    return parse_compress(args.compress)[0]


def evaluation_sample(clients, size, seed):
    """The clients whose parts are evaluated at the end (and every epoch with --client-eval epoch): all of
    them when there are at most ``size``, else a seeded sample of ``size`` that ends with the last client, whose
    part is the report's measure. A test pass a client: 1,000 clients would make the evaluation the run."""
    if len(clients) <= size:
        return list(clients)
    others = np.random.default_rng(seed).choice(clients[:-1], size - 1, replace=False)
    return sorted(int(k) for k in others) + [clients[-1]]


def batch_sizes(num_examples, batch_size):
    """The sizes of the mini-batches of one pass over ``num_examples``, in order."""
    return [min(batch_size, num_examples - start) for start in range(0, num_examples, batch_size)]


def evaluation_batches(images, batch_size):
    """``(start, size)`` of each evaluation batch over the first ``images`` evaluation images."""
    return list(zip(range(0, images, batch_size), batch_sizes(images, batch_size)))


def evaluation_turns(turn_batches, evaluations):
    """The indices of the turns after which an epoch is evaluated ``evaluations - 1`` times within it
    (--evals-per-epoch): for each k < ``evaluations``, the first turn by whose end k / ``evaluations`` of the
    epoch's batches (``turn_batches``, each turn's) are done; never the last turn, after which the epoch's own
    evaluation comes."""
    done, total = np.cumsum(turn_batches), sum(turn_batches)
    first = {int(np.argmax(done * evaluations >= k * total)) for k in range(1, evaluations)}
    return sorted(first - {len(turn_batches) - 1})


class Client:
    """One data holder: its shard of the training data, its layers up to the cut with their optimizer, its
    shuffling and noise. It lives on a ``ClientRank`` beside that rank's other clients and obeys the server's
    commands (``commands``: tag -> method). Subclasses change what one batch is (``train_batch``,
    ``evaluate``)."""

    commands = {Tag.TURN: "take_turn", Tag.HAND_OVER: "hand_over", Tag.EVALUATE: "evaluate", Tag.EXPORT: "export"}

    def __init__(self, number, shard, rank):
        self.number, self.rank = number, rank
        self.channel, self.args, self.device = rank.channel, rank.args, rank.device
        args = self.args
        x_train, self.y_train = shard
        self.x_train = x_train.to(self.device)
        self.x_test, self.y_test = rank.x_test, rank.y_test
        self.parts = copy.deepcopy(rank.initial_parts)
        self.client_part = self.parts[0]
        self.state = [p for part in self.parts for p in part.parameters()]
        self.optimizer = sgd(list(self.state), args)
        if args.momentum > 0:  # create the momentum buffers now, so that a passed state has a fixed size
            for p in list(self.state):  # (zeros give the same first step as torch's lazy buffers)
                self.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
                self.state.append(self.optimizer.state[p]["momentum_buffer"])
        # Seeded by the client's number, not its rank: a client computes the same wherever it runs.
        self.shuffle = shuffle_generator(args.seed, number - 1)
        self.noise = torch.Generator(device=self.device).manual_seed(args.seed * 1000 + number)
        self.wire = rank.wire  # the cut's coded messages (cut.py)
        self.sent_for_leakage = []  # during an evaluation: the activations sent for the first test images
        self.work = Work(self.channel, rank.flops_per_batch)  # what it computes and sends in its turns (work.py)

    @staticmethod
    def make_parts(args):
        return [split(args.model, args.cut_layer, args.seed, bottleneck_of(args))[0]]

    @staticmethod
    def plan(host, num_ranks):
        return process_policy.one_at_a_time(host)  # clients take turns with the server, one at a time

    def state_dict(self):
        """For the checkpoint: its parts with their momentum, its shuffling and its noise."""
        return {"state": flatten(self.state).cpu(), **snapshot({"shuffle": self.shuffle, "noise": self.noise})}

    def load_state_dict(self, state):
        unflatten_into(self.state, state["state"].to(self.device))  # in place: the optimizer holds these
        restore({"shuffle": self.shuffle, "noise": self.noise}, state)

    def report(self, **extra):
        """Tell the server this turn is over, with this rank's traffic since its last report."""
        self.channel.send_obj({**self.channel.traffic(), **extra}, SERVER, Tag.TURN_DONE)

    def turn_report(self, **extra):
        """The report that ends a training turn: with this client's work since its last (work.py)."""
        self.report(work={**self.work.take(), "peak_rss_mb": peak_rss_mb()}, **extra)

    def take_turn(self, epoch, lr, receive_from=None):
        """One pass over this client's shard, batch by batch with the server (in pass mode, first the parts
        of ``receive_from``, the client before it: already here if that client is on this rank)."""
        with self.work.active():
            set_lr(self.optimizer, lr)
            if receive_from is not None and self.rank.placement.rank_of(receive_from) != self.channel.rank:
                flat = torch.empty(sum(t.numel() for t in self.state))
                self.channel.recv(flat.numpy(), self.rank.placement.rank_of(receive_from), Tag.CLIENT_STATE)
                unflatten_into(self.state, flat.to(self.device))
            for part in self.parts:
                part.train()
            turn = list(batches(self.x_train, self.y_train, self.args.batch_size, self.shuffle))
            self.start_turn(turn)
            for x, y in turn:
                with self.work.batch(len(y)):
                    self.train_batch(x, y)
            self.end_turn()

    def start_turn(self, turn):
        # All the turn's labels in one message: one hand-over less per batch than labels sent with each batch.
        self.channel.send(torch.cat([y for _, y in turn]).numpy(), SERVER, Tag.LABELS)

    def end_turn(self):
        self.turn_report()

    def send_smashed(self, x):
        """Forward to the cut and send the activations (with --noise-std, noisy: the noise does not change the
        gradient, which flows back to ``smashed`` as it is)."""
        smashed = self.client_part(x)
        sent = smashed.detach()
        if self.args.noise_std:
            sent = sent + self.args.noise_std * torch.randn(sent.shape, generator=self.noise, device=self.device)
        packed = self.wire.send(sent, SERVER, Tag.SMASHED)
        if not torch.is_grad_enabled() and self.args.leakage_images:  # evaluation: keep what the server sees
            self.sent_for_leakage.append(self.wire.seen(packed, Tag.SMASHED, sent.shape))
        return smashed

    def backward_cut(self, smashed, x):
        """Receive the gradient at the cut, finish the backward pass (with NoPeek's term) and step."""
        cut_grad = self.wire.recv(SERVER, Tag.CUT_GRAD, smashed.shape)
        penalty = self.args.nopeek * distance_correlation(x, smashed) if self.args.nopeek else None
        client_backward(self.optimizer, smashed, cut_grad.to(self.device), penalty)

    def train_batch(self, x, y):
        """One batch with the server (which has the labels and takes the loss)."""
        smashed = self.send_smashed(x)
        self.optimizer.zero_grad(set_to_none=True)
        self.backward_cut(smashed, x)

    def hand_over(self, to):
        """Pass this client's parts (weights and momentum) to client ``to``, whose turn is next: a message to
        its rank, or, on this rank, a copy counted as the message it stands for."""
        flat = flatten(self.state)
        rank = self.rank.placement.rank_of(to)
        with self.work.active():  # counted in this client's next report
            if rank != self.channel.rank:
                self.channel.send(flat.cpu().numpy(), rank, Tag.CLIENT_STATE)
                return
            self.channel.count_unsent(flat.nbytes, 0)
        receiver = self.rank.clients[to]
        unflatten_into(receiver.state, flat)
        with receiver.work.active():  # as it would have received it from another rank
            self.channel.count_unsent(0, flat.nbytes)

    @torch.no_grad()
    def evaluate(self, images):
        """Send the first ``images`` evaluation images (the validation images, then the test images) through this
        client's part to the server, batch by batch."""
        for part in self.parts:
            part.eval()
        for start, size in evaluation_batches(images, self.args.test_batch_size):
            self.send_smashed(self.x_test[start:start + size])
        self.report(leakage=self.evaluation_leakage(images))

    def evaluation_leakage(self, images):
        """The leakage of an evaluation of the first ``images``: measured in a whole evaluation only (one within an
        epoch sends the validation images alone)."""
        if images < len(self.x_test):
            self.sent_for_leakage = []
            return {}
        return self.measure_leakage()

    def measure_leakage(self):
        """Distance correlation between the first --leakage-images test images and the activations sent."""
        if not self.sent_for_leakage:  # --leakage-images 0
            return {}
        sent, self.sent_for_leakage = torch.cat(self.sent_for_leakage), []
        count = min(self.args.leakage_images, len(sent))
        if count < 4:
            return {}
        return leakage_report(self.x_test[:count].cpu(), sent[:count].cpu(), seed=self.args.seed)

    def export(self):
        """Send this client's parts to the server, for the saved model (after training)."""
        self.channel.send(flat_parameters(torch.nn.ModuleList(self.parts)).cpu().numpy(), SERVER, Tag.UPDATE)


class ClientRank:
    """A client rank: its clients (placement.py), each with its own shard and state, and what they share: the
    test set, the cut's messages and their receive buffers (cut.py), the rank's threads. It runs the client each
    command names; subclasses name their ``client_class``."""

    client_class = Client

    def __init__(self, channel, args, data, device, placement):
        self.channel, self.args, self.device, self.placement = channel, args, device, placement
        shards, (x_test, self.y_test) = data
        self.x_test = x_test.to(device)
        self.wire = CutWire(channel, args.compress, args.compress_grad)  # its clients' receive buffers too
        self.initial_parts = [part.to(device) for part in self.client_class.make_parts(args)]  # copied by each
        self.flops_per_batch = {}  # the clients' parts are alike: a batch size's FLOPs counted once for all
        self.clients = {number: self.client_class(number, shard, self) for number, shard in shards.items()}
        self.handlers = {tag: per_client(self.clients, method) for tag, method in self.client_class.commands.items()}
        process_policy.apply(self.client_class.plan(channel.host, placement.num_ranks), channel)

    def state_dict(self):
        return {number: client.state_dict() for number, client in self.clients.items()}

    def load_state_dict(self, state):
        for number, client in self.clients.items():
            client.load_state_dict(state[number])



class Server:
    """Holds the layers after the cut; gives the clients their turns one after another and evaluates through
    their parts. Subclasses change what one batch is (``train_turn``, ``evaluate_client``) and name their
    ``rank_class`` (that of their client ranks)."""

    rank_class = ClientRank
    returns_gradient = True  # the gradient at the cut goes back to the client (not in local-loss split learning)

    def __init__(self, channel, args, data, device, placement):
        self.channel, self.args, self.device = channel, args, device
        y_test, self.num_test, self.shard_sizes = data
        self.y_test = None if y_test is None else y_test.to(device)
        self.clients, self.rank_of = placement.clients, placement.rank_of
        self.evaluated = evaluation_sample(self.clients, args.eval_clients, args.seed)
        self.server_part = self.make_part(args).to(device)
        self.optimizer = sgd(self.server_part.parameters(), args)
        self.cut_shape = cut_shape(args.model, args.cut_layer, bottleneck_of(args))
        self.wire = CutWire(channel, args.compress, args.compress_grad)  # the cut's coded messages (cut.py)
        self.holder = None  # in pass mode: the client whose part is the newest
        self.received = {}  # what the server has been sent: (tag, shape per example) -> messages
        self.work = Work(channel)  # what it computes in training (work.py)
        process_policy.apply(self.plan(channel.host, placement.num_ranks), channel)

    @staticmethod
    def make_part(args):
        return split(args.model, args.cut_layer, args.seed, bottleneck_of(args))[1]

    def state_dict(self):
        """For the checkpoint: the server part and its optimizer, who holds the newest part in pass mode, and
        what the server has been sent so far."""
        return {**snapshot({"server_part": self.server_part, "optimizer": self.optimizer}), "holder": self.holder,
                "received": [[tag, list(shape), count] for (tag, shape), count in self.received.items()]}

    def load_state_dict(self, state):
        restore({"server_part": self.server_part, "optimizer": self.optimizer}, state)
        self.holder = state["holder"]
        self.received = {(tag, tuple(shape)): count for tag, shape, count in state["received"]}

    @staticmethod
    def plan(host, num_ranks):
        return process_policy.one_at_a_time(host)  # the server and the client whose turn it is alternate

    # ------------------------------------------------------------------- sending, and checked receiving

    def command(self, client, tag, **fields):
        """A control message to ``client`` (on its rank, which runs the client the message names)."""
        self.channel.send_obj({"client": client, **fields}, self.rank_of(client), tag)

    def expect(self, client, tag, shape):
        """Wait for the next message; one from another sender or with another tag is a protocol error.
        Records what arrived (for ``server_received``)."""
        rank = self.rank_of(client)
        status = self.channel.probe(awaited=rank)
        source, got = status.Get_source(), status.Get_tag()
        if source != rank or got != tag:
            raise ProtocolError(f"server expected {tag.name} from client {client} (rank {rank}), got "
                                f"{tag_name(got)} from rank {source}")
        key = (tag.name, tuple(shape))
        self.received[key] = self.received.get(key, 0) + 1

    def recv(self, client, tag, buffer):
        """Receive ``tag`` from ``client`` into ``buffer``, which has exactly the expected size: another sender,
        tag or size (raw images instead of activations, say) is a protocol error."""
        self.expect(client, tag, buffer.shape[1:])
        self.channel.recv(buffer.numpy(), self.rank_of(client), tag)
        return buffer.to(self.device)

    def recv_cut(self, client, tag, shape):
        """Receive a coded tensor of ``shape`` across the cut from ``client`` (checked as ``recv`` checks)."""
        self.expect(client, tag, shape[1:])
        return self.wire.recv(self.rank_of(client), tag, shape).to(self.device)

    def recv_smashed(self, client, batch):
        return self.recv_cut(client, Tag.SMASHED, (batch, *self.cut_shape))

    def finish_turn(self, client):
        self.expect(client, Tag.TURN_DONE, ())
        return self.channel.recv_obj(self.rank_of(client), Tag.TURN_DONE)

    # ------------------------------------------------------------------------------------------ training

    def train_turn(self, client, bar):
        """Server side of one client's turn; returns (sum of the batch losses x batch sizes, examples)."""
        labels = self.recv(client, Tag.LABELS, torch.empty(self.shard_sizes[client - 1], dtype=torch.int64))
        loss_sum, seen = 0.0, 0
        for size in batch_sizes(len(labels), self.args.batch_size):
            with self.work.batch(size):
                loss, cut_grad = server_step(self.server_part, self.optimizer, self.recv_smashed(client, size),
                                             labels[seen:seen + size], cut_grad=self.returns_gradient)
            loss_sum += loss.item() * size
            if self.returns_gradient:
                self.wire.send(cut_grad, self.rank_of(client), Tag.CUT_GRAD)
            seen += size
            bar.update()
        return loss_sum, seen, self.finish_turn(client)

    def train_epoch(self, epoch, lr):
        """Every client's turn, in order; returns the mean training loss and the epoch's traffic."""
        self.server_part.train()
        set_lr(self.optimizer, lr)
        loss_sum, seen, reports, evaluation_reports, within, evaluating = 0.0, 0, [], [], [], 0.0
        turn_batches = [num_batches(n, self.args.batch_size) for n in self.shard_sizes]
        evaluate_after = evaluation_turns(turn_batches, self.args.evals_per_epoch)
        with progress(self.args, None, sum(turn_batches), f"epoch {epoch}") as bar, self.work.active():
            for turn, client in enumerate(self.clients):
                receive_from = None
                if self.args.client_weights == "pass" and self.holder not in (None, client):
                    receive_from = self.holder
                    self.command(receive_from, Tag.HAND_OVER, to=client)
                self.command(client, Tag.TURN, epoch=epoch, lr=lr, receive_from=receive_from)
                turn_loss, turn_seen, report = self.train_turn(client, bar)
                loss_sum, seen = loss_sum + turn_loss, seen + turn_seen
                reports.append(report)
                self.holder = client
                if turn in evaluate_after:
                    point, report, seconds = self.evaluate_within(client,
                                                                  sum(turn_batches[:turn + 1]) / sum(turn_batches))
                    within.append(point)
                    evaluation_reports.append(report)
                    evaluating += seconds
        within_keys = {"within_epoch": within, "within_epoch_s": evaluating} if within else {}
        return {"train_loss": loss_sum / seen, **self.traffic(reports + evaluation_reports),
                **self.epoch_work(reports), **within_keys}

    def evaluate_within(self, client, fraction):
        """An evaluation within the epoch (--evals-per-epoch), once ``fraction`` of its batches are done:
        ``client``'s part on the validation images alone. Returns the epoch's record of it, the client's report
        and the seconds it took (the experimenter's, not the server's work)."""
        started = time.perf_counter()
        with self.work.aside():
            scores, report = self.evaluate_client(client, images=self.args.validation)
        self.server_part.train()
        return {"fraction": fraction, **scores}, report, time.perf_counter() - started

    def traffic(self, client_reports):
        """Bytes sent and received by every rank since the last call."""
        total = self.channel.traffic()
        for report in client_reports:
            for key in total:
                total[key] += report[key]
        return total

    def epoch_work(self, client_reports):
        """The epoch's work of the server and of each client (work.py), from the clients' turn reports."""
        return epoch_keys(self.work.take(), [report.pop("work") for report in client_reports])

    # ---------------------------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def evaluate_client(self, client, images=None):
        """Loss and accuracy of ``client``'s part followed by the server part, on the first ``images`` evaluation
        images (default all: validation and test); and the client's report."""
        self.server_part.eval()
        images = images or self.num_test
        self.command(client, Tag.EVALUATE, images=images)
        scores = Scores(self.args.validation)
        for start, size in evaluation_batches(images, self.args.test_batch_size):
            scores.add(self.server_part(self.recv_smashed(client, size)), self.y_test[start:start + size])
        return scores.result(), self.finish_turn(client)

    def evaluate(self):
        """The report's measure: the last client's part; with --client-eval epoch, those of the evaluation
        sample too (``evaluation_sample``). The leakage keys are the last client's (docs/findings.md, "Leakage")."""
        if self.args.client_eval == "epoch":
            return self.evaluate_all_clients()
        scores, report = self.evaluate_client(self.clients[-1])
        return {**scores, **report.pop("leakage"), **self.traffic([report])}

    def evaluate_all_clients(self):
        """The parts of the evaluation sample (every client's, up to --eval-clients; the last client's last, as
        the report's measure), with mean and spread."""
        accuracies, leakages, reports = [], [], []
        for client in self.evaluated:
            scores, report = self.evaluate_client(client)
            accuracies.append(scores["test_acc"])
            leakages.append(report.pop("leakage"))
            reports.append(report)
        return {**scores, **leakages[-1], "client_test_acc": accuracies,
                "client_test_acc_mean": float(np.mean(accuracies)),
                "client_test_acc_std": float(np.std(accuracies)), "client_leakage": leakages,
                **self.traffic(reports)}

    def final_summary(self):
        """For the results file: the evaluation sample's parts evaluated, and every kind of message the server
        saw. The trained parts go to <results-dir>/<run-name>.pt, for the attacks (attack.py)."""
        final = self.evaluate_all_clients()
        self.save_parts()
        return {"evaluated_clients": self.evaluated,
                "final_client_test_acc": final["client_test_acc"],
                "final_client_test_acc_mean": final["client_test_acc_mean"],
                "final_client_test_acc_std": final["client_test_acc_std"],
                "final_client_leakage": final["client_leakage"],
                "server_received": [{"tag": tag, "shape_per_example": list(shape), "messages": count}
                                    for (tag, shape), count in sorted(self.received.items())]}

    def save_parts(self):
        """Ask every client for its parts (for the experimenter, after training: not part of the method) and
        save them with the server part and the configuration."""
        client_parts = []
        for client in self.clients:
            self.command(client, Tag.EXPORT)
            parts = self.rank_class.client_class.make_parts(self.args)
            flat = torch.empty(sum(p.numel() for part in parts for p in part.parameters()))
            self.channel.recv(flat.numpy(), self.rank_of(client), Tag.UPDATE)
            unflatten_into([p for part in parts for p in part.parameters()], flat)
            client_parts.append([part.state_dict() for part in parts])
        path = Path(self.args.results_dir) / f"{self.args.run_name}.pt"
        with atomic_path(path) as tmp:
            torch.save({"config": vars(self.args), "client_parts": client_parts,
                        "server_part": {k: v.cpu() for k, v in self.server_part.state_dict().items()}}, tmp)

    def stop(self):
        stop_workers(self.channel)
