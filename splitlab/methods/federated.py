"""Federated averaging (FedAvg, McMahan et al. 2017): every sampled client trains the global model on its shard, and
the aggregator replaces the model with the average of theirs, weighted by shard size. One round is the same code
in both modes: clients simulated in one process (:func:`run_one_process`) or on MPI ranks (:class:`AggregatorRank`
on rank 0, :class:`ClientRank` on the others)."""

from pathlib import Path

import numpy as np
import torch

from data import batches, load_shards, shuffle_generator
from models import build, flat_parameters, load_flat_parameters
from splitlab.costs.work import Work, epoch_keys, peak_rss_mb
from splitlab.methods import averaging
from splitlab.methods.mpi_method import stop_workers, take_turns
from splitlab.net import process_policy
from splitlab.net.protocol import SERVER, ProtocolError, Tag
from splitlab.privacy.defences import clip_and_noise, update_noise_generator
from splitlab.training.checkpoint import in_one_process, restore, snapshot
from splitlab.training.codec import codec, decode_tensors, encode_tensors, tensors_bytes
from splitlab.training.cli import warn_if_link_set
from splitlab.training.loop import fit
from splitlab.training.results import Results
from splitlab.training.results_guard import atomic_path
from splitlab.training.steps import evaluate, set_lr, sgd, train_epoch

ONE_PROCESS_CLIENTS = 10  # the report's data holders


class Coding:
    """FedAvg's messages coded (--compress, --compress-down): the global model down, each parameter tensor a row,
    and a client's update up, coded as its change from the model it started from. Without a codec a message is
    the flat float32 model, as FedAvg sends it, and a client sends its model, not its change (the same numbers
    to the digit as before codecs)."""

    def __init__(self, args, model):
        self.up, self.down = codec(args.compress), codec(args.compress_down)
        self.sizes = [p.numel() for p in model.parameters()]
        self.up_bytes, self.down_bytes = tensors_bytes(self.up, self.sizes), tensors_bytes(self.down, self.sizes)

    def model_down(self, params):
        """``(message, start)``: the global model ``params`` as sent down (packed once a round), and as the
        clients decode it and train from it (uncoded: ``params`` itself)."""
        if self.down.name == "none":
            return params.cpu().numpy(), params
        message = encode_tensors(self.down, params.cpu().split(self.sizes))
        return message, self.unpack_model(message)

    def unpack_model(self, packed):
        return torch.from_numpy(packed) if self.down.name == "none" else decode_tensors(self.down, packed, self.sizes)

    def pack_update(self, params, start):
        """A client's message: its parameters ``params`` after training from ``start`` (uncoded, the tensor itself,
        which stays on its device in one process)."""
        if self.up.name == "none":
            return params
        return encode_tensors(self.up, (params - start).cpu().split(self.sizes))

    def unpack_update(self, packed, start):
        """The client's parameters as the aggregator reads them: ``start`` plus the decoded change."""
        if self.up.name == "none":
            return packed if torch.is_tensor(packed) else torch.from_numpy(packed)
        return start + decode_tensors(self.up, packed, self.sizes).to(start.device)

    def buffer(self, down):
        """A receive buffer for a model sent down (``down``) or an update sent up."""
        name, nbytes = (self.down.name, self.down_bytes) if down else (self.up.name, self.up_bytes)
        return np.empty(nbytes // 4, np.float32) if name == "none" else np.empty(nbytes, np.uint8)


class Client:
    """One data holder: its shard, its shuffling and its local optimizer (whose momentum buffers it keeps
    between rounds with --client-momentum keep)."""

    def __init__(self, index, x, y, model, args, channel=None, flops_per_batch=None):
        self.index, self.x, self.y, self.model, self.args = index, x, y, model, args
        self.work = Work(channel, flops_per_batch)  # what it computes and sends in its rounds (work.py)
        self.shuffle = shuffle_generator(args.seed, index)
        # Made once: torch's first optimizer in a process costs seconds of imports, which would otherwise land
        # in every MPI client's first round.
        self.optimizer = sgd(model.parameters(), args)

    def state_dict(self):
        """For the checkpoint: its momentum buffers (--client-momentum keep) and its shuffling."""
        return snapshot({"optimizer": self.optimizer, "shuffle": self.shuffle})

    def load_state_dict(self, state):
        restore({"optimizer": self.optimizer, "shuffle": self.shuffle}, state)

    def train(self, global_params, lr, round_number):
        """Start from the global model, train locally; return (parameters, mean training loss): the parameters
        of a clipped, noised update with --clip-update."""
        load_flat_parameters(self.model, global_params)
        set_lr(self.optimizer, lr)
        for _ in range(self.args.local_epochs):
            loss = train_epoch(self.model, self.optimizer,
                               batches(self.x, self.y, self.args.batch_size, self.shuffle), self.work)
        if self.args.client_momentum == "reset":  # the next round starts from zero: nothing to hold till then
            self.optimizer.state.clear()
        params = flat_parameters(self.model)
        if self.args.clip_update:
            generator = update_noise_generator(self.args.seed, self.index, round_number)
            update = clip_and_noise((params - global_params).cpu(), self.args.clip_update, self.args.update_noise,
                                    generator)
            params = global_params + update.to(params.device)
        return params, loss


class Round:
    """One round on the aggregator's side, in either mode: the sampled clients' updates, averaged in client order
    whatever order they come in, then one aggregator step; :meth:`finish` gives the round's record."""

    def __init__(self, aggregator, shard_sizes, round_number, args, work, coding):
        self.aggregator, self.shard_sizes, self.work = aggregator, shard_sizes, work
        self.sampled = [i + 1 for i in averaging.sample_clients(len(shard_sizes), args.fraction, args.seed,
                                                                round_number)]
        self.sizes = [shard_sizes[client - 1] for client in self.sampled]
        self.average = averaging.OrderedAverage(self.sampled, self.sizes)
        self.coding = coding
        self.model_message, self.start = coding.model_down(aggregator.params)  # what the clients train from
        self.infos = {}  # client: its loss, traffic and work, which end its part of the round

    def add(self, client, packed):
        """Take ``client``'s message (Coding.pack_update)."""
        self.average.add(client, self.coding.unpack_update(packed, self.start))

    def finish(self):
        """Step the global model; the round's record: loss, who took part, the model traffic a deployment has,
        and every role's work."""
        with self.work.active():
            self.aggregator.step(self.average.result())
        losses = [self.infos[client]["train_loss"] for client in self.sampled]
        n = len(self.sampled)
        work = epoch_keys(self.work.take(), [self.infos[k]["work"] if k in self.infos else {}
                                             for k in range(1, len(self.shard_sizes) + 1)])
        return {"train_loss": float(np.average(losses, weights=self.sizes)), "clients": n,
                "model_bytes_down": self.coding.down_bytes * n, "model_bytes_up": self.coding.up_bytes * n, **work}


def evaluate_global(aggregator, model, x_test, y_test, args):
    load_flat_parameters(model, aggregator.params.to(x_test.device))
    return evaluate(model, x_test, y_test, args.test_batch_size, args.validation)


def save_global_model(aggregator, model, args):
    """The final global model, with the configuration, to <results-dir>/<run-name>.pt: what a FedAvg server holds
    at the last round, for the attacks on its clients' updates (attack_updates.py)."""
    load_flat_parameters(model, aggregator.params.to(next(model.parameters()).device))
    with atomic_path(Path(args.results_dir) / f"{args.run_name}.pt") as tmp:
        torch.save({"config": vars(args), "global_model": {k: v.cpu() for k, v in model.state_dict().items()}}, tmp)


def run_one_process(parser, args, device):
    """Every client in this process, in turn, training one model; the messages a deployment would send are
    counted as sent."""
    warn_if_link_set()
    args.clients = args.clients or ONE_PROCESS_CLIENTS
    shard_sizes, shards, (x_test, y_test) = load_shards(args, args.clients, range(1, args.clients + 1))
    x_test, y_test = x_test.to(device), y_test.to(device)
    model = build(args.model, args.seed).to(device)  # one model, which each client in turn trains
    flops = {}  # the clients train one model: its FLOPs a batch size, counted once for all
    clients = {k: Client(k - 1, x.to(device), y.to(device), model, args, None, flops) for k, (x, y) in shards.items()}
    aggregator = averaging.Aggregator(flat_parameters(model), args.server_momentum, args.server_lr)
    server_work = Work()  # the aggregator's (work.py)
    coding = Coding(args, model)

    def train_one_round(round_number, lr):
        round = Round(aggregator, shard_sizes, round_number, args, server_work, coding)
        for k in round.sampled:
            with clients[k].work.active():
                params, loss = clients[k].train(round.start.to(device), lr, round_number)
                packed = coding.pack_update(params, round.start.to(device))
            with server_work.active():
                round.add(k, packed)
            work = {**clients[k].work.take(), "peak_rss_mb": peak_rss_mb(),  # the model's way down and up, as over MPI
                    "bytes_sent": coding.up_bytes, "bytes_received": coding.down_bytes}
            round.infos[k] = {"train_loss": loss, "work": work}
        return round.finish()

    save, resumed = in_one_process(args, {"aggregator": aggregator, **{f"client {k}": c for k, c in clients.items()}})
    results = Results(args, parser, "federated", device)
    results.data["shard_sizes"] = shard_sizes
    fit(args, results, train_one_round, lambda: evaluate_global(aggregator, model, x_test, y_test, args), save=save,
        resumed=resumed, final_info=lambda: save_global_model(aggregator, model, args) or {})
    print(f"results: {results.path}")


class AggregatorRank:
    """Rank 0 over MPI: sends the global model to each sampled client, averages what comes back."""

    def __init__(self, channel, args, data, device, placement):
        process_policy.apply(process_policy.side_by_side(channel.host), channel)  # evaluates while clients wait
        self.channel, self.args, self.device = channel, args, device
        x_test, y_test, self.shard_sizes = data
        self.x_test, self.y_test = x_test.to(device), y_test.to(device)
        self.num_ranks, self.rank_of = placement.num_ranks, placement.rank_of
        self.model = build(args.model, args.seed).to(device)
        self.aggregator = averaging.Aggregator(flat_parameters(self.model).cpu(), args.server_momentum, args.server_lr)
        self.coding = Coding(args, self.model)
        self.update = self.coding.buffer(down=False)
        self.work = Work(channel)  # the aggregator's (work.py)

    def train_epoch(self, round_number, lr):
        round = Round(self.aggregator, self.shard_sizes, round_number, self.args, self.work, self.coding)
        updated, has_model = set(), set()

        def start(client):
            rank = self.rank_of(client)
            self.channel.send_obj({"client": client, "round": round_number, "lr": lr}, rank, Tag.ROUND)
            if rank in has_model:  # the rank has this round's model: counted as sent again, to this client
                self.channel.count_unsent(round.model_message.nbytes, 0)
            else:
                self.channel.send(round.model_message, rank, Tag.GLOBAL_MODEL)
                has_model.add(rank)

        def take_update(client):  # in whatever order the updates come
            if client in updated:
                raise ProtocolError(f"client {client} sent a second UPDATE in round {round_number}")
            self.channel.recv(self.update, self.rank_of(client), Tag.UPDATE)
            updated.add(client)
            round.add(client, self.update)

        def take_info(client):  # the update's description ends the client's round
            if client not in updated:
                raise ProtocolError(f"client {client} sent UPDATE_INFO before its UPDATE")
            round.infos[client] = self.channel.recv_obj(self.rank_of(client), Tag.UPDATE_INFO)
            return True

        at_once = process_policy.fedavg_clients_at_once(self.channel.host, self.num_ranks)
        with self.work.active():
            take_turns(self.channel, round.sampled, at_once, start,
                       {Tag.UPDATE: take_update, Tag.UPDATE_INFO: take_info}, self.rank_of)
        record = round.finish()
        traffic = self.channel.traffic()
        for key in traffic:
            traffic[key] += sum(info[key] for info in round.infos.values())
        return {**record, **traffic}

    def state_dict(self):
        return {"aggregator": self.aggregator.state_dict()}

    def load_state_dict(self, state):
        self.aggregator.load_state_dict(state["aggregator"])

    def evaluate(self):
        return evaluate_global(self.aggregator, self.model, self.x_test, self.y_test, self.args)

    def final_summary(self):
        save_global_model(self.aggregator, self.model, self.args)
        return {}

    def stop(self):
        stop_workers(self.channel)


class ClientRank:
    """A client rank: its clients (placement.py), which share one model as in one-process mode; on each ROUND,
    the client it names trains the global model it is sent and sends back the result."""

    def __init__(self, channel, args, data, device, placement):
        at_once = process_policy.fedavg_clients_at_once(channel.host, placement.num_ranks)
        process_policy.apply(process_policy.side_by_side(channel.host, at_once), channel)
        self.channel, self.device = channel, device
        model = build(args.model, args.seed).to(device)
        shards, _ = data
        flops = {}  # the clients train one model: its FLOPs a batch size, counted once for all
        self.clients = {k: Client(k - 1, x.to(device), y.to(device), model, args, channel, flops)
                        for k, (x, y) in shards.items()}
        self.coding = Coding(args, model)
        self.global_packed = self.coding.buffer(down=True)
        self.global_params = None
        self.model_round = None  # the round whose global model this rank holds
        self.handlers = {Tag.ROUND: self.train_round}

    def state_dict(self):
        return {k: client.state_dict() for k, client in self.clients.items()}

    def load_state_dict(self, state):
        for k, client in self.clients.items():
            client.load_state_dict(state[k])

    def train_round(self, client, round, lr):
        if client not in self.clients:
            raise ProtocolError(f"ROUND for client {client}, which is not on rank {self.channel.rank}")
        work = self.clients[client].work
        with work.active():
            if round == self.model_round:  # sent once a round and rank; counted as received by each client
                self.channel.count_unsent(0, self.global_packed.nbytes)
            else:
                self.channel.recv(self.global_packed, SERVER, Tag.GLOBAL_MODEL)
                self.global_params = self.coding.unpack_model(self.global_packed).to(self.device)
                self.model_round = round
            params, loss = self.clients[client].train(self.global_params, lr, round)
            packed = self.coding.pack_update(params, self.global_params)
            self.channel.send(packed.cpu().numpy() if torch.is_tensor(packed) else packed, SERVER, Tag.UPDATE)
        self.channel.send_obj({"train_loss": loss, **self.channel.traffic(),
                               "work": {**work.take(), "peak_rss_mb": peak_rss_mb()}}, SERVER, Tag.UPDATE_INFO)
