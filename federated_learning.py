"""Federated averaging (FedAvg, McMahan et al. 2017): clients train the global model on their own shards and
the aggregator replaces it with the average of their models, weighted by shard size.

    python federated_learning.py                  # 10 clients simulated in one process; results/federated.json
    mpirun -n 11 python federated_learning.py     # rank 0 the aggregator, ranks 1..10 the clients
    mpirun -n 5 python federated_learning.py --clients 1000   # 1,000 clients on 4 ranks (placement.py)
    python federated_learning.py --help

Both modes give the same numbers for the same seed and flags. One round (every sampled client
--local-epochs passes over its shard) is one epoch in the results. Unlike the report, local SGD keeps
momentum and weight decay; each client's momentum buffers start from zero every round by default
(--client-momentum keep carries them over to the client's next round). --server-momentum adds FedAvgM.
"""

import runtime  # first: process settings that must precede torch

import numpy as np
import torch

from averaging import Aggregator, OrderedAverage, sample_clients
from data import batches, load_shards, shuffle_generator
from models import build, flat_parameters, load_flat_parameters
from mpi_method import load_clients, run_method, run_mpi_main, stop_workers, take_turns
import process_policy
from protocol import SERVER, ProtocolError, Tag
from training import Results, add_client_args, add_mpi_args, common_parser, evaluate, fit, fraction, \
    launched_by_mpi, nonnegative_float, positive_float, positive_int, resolve_device, run_main, set_lr, sgd, \
    train_epoch, warn_if_link_set
from work import Work, epoch_keys, peak_rss_mb


ONE_PROCESS_CLIENTS = 10  # the report's data holders


def build_parser():
    parser = common_parser("federated", __doc__.splitlines()[0])
    add_client_args(parser)
    add_mpi_args(parser, one_process_clients=ONE_PROCESS_CLIENTS)
    add = parser.add_argument
    add("--local-epochs", type=positive_int, default=1, help="passes over its shard each client makes per round")
    add("--fraction", type=fraction, default=1.0, help="share of the clients sampled each round (seeded)")
    add("--client-momentum", choices=["reset", "keep"], default="reset",
        help="reset: local momentum starts from zero every round; keep: each client keeps its buffers")
    add("--server-momentum", type=nonnegative_float, default=0.0,
        help="FedAvgM: momentum of the aggregator's update (0 = plain FedAvg)")
    add("--server-lr", type=positive_float, default=1.0,
        help="the aggregator moves the global model this many times the clients' mean update "
             "(1 = plain FedAvg: the global model becomes the average)")
    return parser


# --------------------------------------------------------------------------------------- the method itself

class Client:
    """One data holder: its shard, its shuffling and its local optimizer (whose momentum buffers it keeps
    between rounds with --client-momentum keep)."""

    def __init__(self, index, x, y, model, args, channel=None, flops_per_batch=None):
        self.x, self.y, self.model, self.args = x, y, model, args
        self.work = Work(channel, flops_per_batch)  # what it computes and sends in its rounds (work.py)
        self.shuffle = shuffle_generator(args.seed, index)
        # Made once: torch's first optimizer in a process costs seconds of imports, which would otherwise land
        # in every MPI client's first round.
        self.optimizer = sgd(model.parameters(), args)

    def train(self, global_params, lr):
        """Start from the global model, train locally; return (parameters, mean training loss)."""
        load_flat_parameters(self.model, global_params)
        set_lr(self.optimizer, lr)
        for _ in range(self.args.local_epochs):
            loss = train_epoch(self.model, self.optimizer,
                               batches(self.x, self.y, self.args.batch_size, self.shuffle), self.work)
        if self.args.client_momentum == "reset":  # the next round starts from zero: nothing to hold till then
            self.optimizer.state.clear()
        return flat_parameters(self.model), loss


def round_record(losses, sizes, model_bytes, sampled):
    """The per-round keys both modes write: loss, who took part, and the model traffic a deployment has."""
    return {"train_loss": float(np.average(losses, weights=sizes)), "clients": len(sampled),
            "model_bytes_down": model_bytes * len(sampled), "model_bytes_up": model_bytes * len(sampled)}


# ---------------------------------------------------------------------------------------------- two modes

def evaluate_global(aggregator, model, x_test, y_test, batch_size):
    load_flat_parameters(model, aggregator.params.to(x_test.device))
    return evaluate(model, x_test, y_test, batch_size)


def run_one_process(parser, args, device):
    warn_if_link_set()
    args.clients = args.clients or ONE_PROCESS_CLIENTS
    shard_sizes, shards, (x_test, y_test) = load_shards(args, args.clients, range(1, args.clients + 1))
    x_test, y_test = x_test.to(device), y_test.to(device)
    model = build(args.model, args.seed).to(device)  # one model, which each client in turn trains
    flops = {}  # the clients train one model: its FLOPs a batch size, counted once for all
    clients = [Client(k - 1, x.to(device), y.to(device), model, args, None, flops) for k, (x, y) in shards.items()]
    aggregator = Aggregator(flat_parameters(model), args.server_momentum, args.server_lr)
    model_bytes = aggregator.params.numel() * aggregator.params.element_size()
    server_work = Work()  # the aggregator's (work.py)

    def train_one_round(round_number, lr):
        sampled = sample_clients(len(clients), args.fraction, args.seed, round_number)
        sizes = [len(clients[i].y) for i in sampled]
        average, losses, works = OrderedAverage(sampled, sizes), [], {}
        for i in sampled:
            with clients[i].work.active():
                params, loss = clients[i].train(aggregator.params, lr)
            # the model's way down and up, as over MPI
            works[i] = {**clients[i].work.take(), "bytes_sent": model_bytes, "bytes_received": model_bytes,
                        "peak_rss_mb": peak_rss_mb()}
            with server_work.active():
                average.add(i, params)
            losses.append(loss)
        with server_work.active():
            aggregator.step(average.result())
        return {**round_record(losses, sizes, model_bytes, sampled),
                **epoch_keys(server_work.take(), [works.get(i, {}) for i in range(len(clients))])}

    results = Results(args, parser, "federated", device)
    results.data["shard_sizes"] = shard_sizes
    fit(args, results, train_one_round, lambda: evaluate_global(aggregator, model, x_test, y_test,
                                                                args.test_batch_size))
    print(f"results: {results.path}")


# ------------------------------------------------------------------------------------------- over MPI

class MPIAggregator:
    """Rank 0: sends the global model to each sampled client, averages what comes back."""

    def __init__(self, channel, args, data, device, placement):
        process_policy.apply(process_policy.side_by_side(channel.host), channel)  # evaluates while clients wait
        self.channel, self.args, self.device = channel, args, device
        x_test, y_test, self.shard_sizes = data
        self.x_test, self.y_test = x_test.to(device), y_test.to(device)
        self.num_clients, self.num_ranks, self.rank_of = placement.num_clients, placement.num_ranks, placement.rank_of
        self.model = build(args.model, args.seed).to(device)
        self.aggregator = Aggregator(flat_parameters(self.model).cpu(), args.server_momentum, args.server_lr)
        self.model_bytes = self.aggregator.params.numel() * self.aggregator.params.element_size()
        self.update = torch.empty(self.aggregator.params.numel())
        self.work = Work(channel)  # the aggregator's (work.py)

    def train_epoch(self, round_number, lr):
        sampled = [i + 1 for i in sample_clients(self.num_clients, self.args.fraction, self.args.seed, round_number)]
        sizes = [self.shard_sizes[client - 1] for client in sampled]
        # in whatever order the updates come, summed in client order
        average, updated, infos, has_model = OrderedAverage(sampled, sizes), set(), {}, set()

        def start(client):
            rank = self.rank_of(client)
            self.channel.send_obj({"client": client, "round": round_number, "lr": lr}, rank, Tag.ROUND)
            if rank in has_model:  # the rank has this round's model: counted as sent again, to this client
                self.channel.count_unsent(self.model_bytes, 0)
            else:
                self.channel.send(self.aggregator.params.numpy(), rank, Tag.GLOBAL_MODEL)
                has_model.add(rank)

        def take_update(client):
            if client in updated:
                raise ProtocolError(f"client {client} sent a second UPDATE in round {round_number}")
            self.channel.recv(self.update.numpy(), self.rank_of(client), Tag.UPDATE)
            updated.add(client)
            average.add(client, self.update)

        def take_info(client):  # the update's description ends the client's round
            if client not in updated:
                raise ProtocolError(f"client {client} sent UPDATE_INFO before its UPDATE")
            infos[client] = self.channel.recv_obj(self.rank_of(client), Tag.UPDATE_INFO)
            return True

        at_once = process_policy.fedavg_clients_at_once(self.channel.host, self.num_ranks)
        with self.work.active():
            take_turns(self.channel, sampled, at_once, start,
                       {Tag.UPDATE: take_update, Tag.UPDATE_INFO: take_info}, self.rank_of)
            self.aggregator.step(average.result())
        record = round_record([infos[client]["train_loss"] for client in sampled], sizes, self.model_bytes,
                              sampled)
        traffic = self.channel.traffic()
        for key in traffic:
            traffic[key] += sum(info[key] for info in infos.values())
        work = epoch_keys(self.work.take(), [infos[k]["work"] if k in infos else {}
                                             for k in range(1, self.num_clients + 1)])
        return {**record, **traffic, **work}

    def evaluate(self):
        return evaluate_global(self.aggregator, self.model, self.x_test, self.y_test, self.args.test_batch_size)

    def final_summary(self):
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
        self.global_params = torch.empty(sum(p.numel() for p in model.parameters()))
        self.model_round = None  # the round whose global model this rank holds
        self.handlers = {Tag.ROUND: self.train_round}

    def train_round(self, client, round, lr):
        if client not in self.clients:
            raise ProtocolError(f"ROUND for client {client}, which is not on rank {self.channel.rank}")
        work = self.clients[client].work
        with work.active():
            if round == self.model_round:  # sent once a round and rank; counted as received by each client
                self.channel.count_unsent(0, self.global_params.nbytes)
            else:
                self.channel.recv(self.global_params.numpy(), SERVER, Tag.GLOBAL_MODEL)
                self.model_round = round
            params, loss = self.clients[client].train(self.global_params.to(self.device), lr)
            self.channel.send(params.cpu().numpy(), SERVER, Tag.UPDATE)
        self.channel.send_obj({"train_loss": loss, **self.channel.traffic(),
                               "work": {**work.take(), "peak_rss_mb": peak_rss_mb()}}, SERVER, Tag.UPDATE_INFO)


def main():
    if launched_by_mpi():
        run_mpi_main(lambda: run_method(build_parser(), "federated", "mpirun -n 11 python federated_learning.py",
                                        load_clients, lambda args: (MPIAggregator, ClientRank)))
    else:
        parser = build_parser()
        args = parser.parse_args()
        run_one_process(parser, args, resolve_device(args.device))


if __name__ == "__main__":
    run_main(main)
