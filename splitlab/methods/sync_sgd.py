"""Synchronous SGD with backup workers (Chen et al. 2016): the parameter server on rank 0, the workers on the
others; the script sync_sgd.py describes the method and runs it."""

import collections
import time

import numpy as np
import torch
import torch.nn.functional as F

from data import shuffle_generator
from models import build, flat_parameters, flatten, load_flat_parameters, unflatten_into
from splitlab.costs.work import Work, epoch_keys, peak_rss_mb
from splitlab.net import process_policy
from splitlab.net.protocol import SERVER, Tag
from splitlab.training.checkpoint import restore, snapshot
from splitlab.training.steps import evaluate, sgd

# ------------------------------------------------------------------------------------ the method itself

def worker_gradient(model, x, y):
    """``(flat gradient of the mean loss on this batch, loss)``."""
    model.zero_grad(set_to_none=False)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return flatten(p.grad for p in model.parameters()), loss.item()


def collect(messages, step, needed):
    """Take gradients for ``step`` from ``messages`` until ``needed`` have come; drop those for older steps.

    ``messages`` yields ``(worker, step, gradient, loss)`` in arrival order. Returns ``(gradients, losses,
    dropped)``, the gradients and losses in the order of the workers, not of arrival: floating-point sums
    depend on their order, and so a run in which every gradient is awaited repeats to the digit.
    """
    taken, dropped = {}, 0
    for worker, message_step, gradient, loss in messages:
        if message_step == step:
            taken[worker] = gradient.clone(), loss
            if len(taken) == needed:
                break
        elif message_step < step:
            dropped += 1
        else:
            raise RuntimeError(f"a gradient for step {message_step} arrived during step {step}")
    in_order = [taken[worker] for worker in sorted(taken)]
    return [gradient for gradient, _ in in_order], [loss for _, loss in in_order], dropped


def apply_average(model, optimizer, gradients):
    """One optimizer step with the mean of ``gradients`` (equal batches: the large batch's gradient)."""
    unflatten_into([p.grad for p in model.parameters()], torch.stack(gradients).mean(0))
    optimizer.step()


def steps_per_epoch(shard_sizes, batch_size):
    """Steps in an epoch: as many as the smallest shard has full batches (each step takes one from each worker)."""
    return max(1, min(shard_sizes) // batch_size)


def scaled_lr(base_lr, step, args, num_awaited, steps_per_epoch):
    """The large-batch rule (Goyal et al. 2017): ``base_lr x N``, reached linearly over the warm-up."""
    if args.lr_scaling == "none":
        return base_lr
    warmup_steps = args.warmup_epochs * steps_per_epoch
    ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return base_lr * (1 + (num_awaited - 1) * ramp)


# ------------------------------------------------------------------------------------------- the ranks

class ParameterServer:
    """Rank 0: sends the parameters to every worker, steps with the first N gradients of each step."""

    def __init__(self, channel, args, data, device, placement):
        process_policy.apply(process_policy.side_by_side(channel.host), channel)  # steps while the workers wait
        self.channel, self.args = channel, args
        self.x_test, self.y_test, self.shard_sizes = data
        self.model = build(args.model, args.seed)  # the step is a few vector operations: the server stays on the CPU
        self.workers, self.ranks = placement.clients, list(range(1, placement.num_ranks + 1))
        self.num_awaited = len(self.workers) - args.backup_workers
        self.optimizer = sgd(self.model.parameters(), args)
        for p in self.model.parameters():
            p.grad = torch.zeros_like(p)
        self.steps_per_epoch = steps_per_epoch(self.shard_sizes, args.batch_size)
        self.step = 0
        self.grad_buf = torch.empty(sum(p.numel() for p in self.model.parameters()) + 3)
        self.work = Work(channel)  # the server's (work.py); the workers report theirs when they stop

    def state_dict(self):
        return {**snapshot({"model": self.model, "optimizer": self.optimizer}), "step": self.step}

    def load_state_dict(self, state):
        restore({"model": self.model, "optimizer": self.optimizer}, state)
        self.step = state["step"]

    def _arrivals(self):
        """Gradient messages in arrival order, as ``(worker, step, gradient, loss)``; the buffer is reused."""
        while True:
            source = self.channel.probe(tag=Tag.GRADIENT, awaited=self.ranks).Get_source()
            self.channel.recv(self.grad_buf.numpy(), source, Tag.GRADIENT)
            yield int(self.grad_buf[-1]), int(self.grad_buf[-3]), self.grad_buf[:-3], float(self.grad_buf[-2])

    def train_epoch(self, epoch, lr):
        dropped, losses, start = 0, [], time.perf_counter()
        with self.work.active():
            for _ in range(self.steps_per_epoch):
                for group in self.optimizer.param_groups:
                    group["lr"] = scaled_lr(lr, self.step, self.args, self.num_awaited, self.steps_per_epoch)
                # A new array each step: a straggler takes its copy only when it is done with its step.
                message = torch.cat([flat_parameters(self.model), torch.tensor([float(self.step)])]).numpy()
                for rank in self.ranks:  # one message a rank, counted once a worker
                    self.channel.send(message, rank, Tag.PARAMS)
                self.channel.count_unsent(message.nbytes * (len(self.workers) - len(self.ranks)), 0)
                gradients, step_losses, late = collect(self._arrivals(), self.step, self.num_awaited)
                apply_average(self.model, self.optimizer, gradients)
                dropped += late
                losses += step_losses
                self.step += 1
        traffic = self.channel.traffic()
        moved = traffic["bytes_sent"] + traffic["bytes_received"]  # every message has the server at one end
        work = self.work.take()
        return {"train_loss": float(np.mean(losses)), "steps": self.steps_per_epoch, "gradients_dropped": dropped,
                "mean_step_time_s": (time.perf_counter() - start) / self.steps_per_epoch,
                "bytes_sent": moved, "bytes_received": moved, "server_flops": work["flops"],
                "server_cpu_s": work["cpu_s"]}

    def evaluate(self):
        return evaluate(self.model, self.x_test, self.y_test, self.args.test_batch_size, self.args.validation)

    def final_summary(self):
        """Stop the workers, which report their work epoch by epoch as they stop (into each epoch's record)."""
        reports = self.stop_workers()
        epochs = self.step // self.steps_per_epoch
        work = {}  # worker -> epoch -> its work
        for report in reports:
            for worker, by_epoch in report["work"].items():
                work[int(worker)] = {int(e): {**counts, "peak_rss_mb": report["peak_rss_mb"]}
                                     for e, counts in by_epoch.items()}
        records = [epoch_keys(None, [work[w].get(e, {}) for w in self.workers]) for e in range(1, epochs + 1)]
        return {"per_epoch": {key: [record[key] for record in records] for key in records[0]}} if records else {}

    def stop_workers(self):
        """Tell every worker rank to stop, take in (and drop) the gradients still on their way, and return what
        each rank reports as it stops."""
        for rank in self.ranks:
            self.channel.send_obj({}, rank, Tag.STOP)
        reports = []
        while len(reports) < len(self.ranks):
            status = self.channel.probe(awaited=self.ranks)
            if status.Get_tag() == Tag.GRADIENT:
                self.channel.recv(self.grad_buf.numpy(), status.Get_source(), Tag.GRADIENT)
            else:
                reports.append(self.channel.recv_obj(status.Get_source(), Tag.STOPPED))
        self.channel.flush()
        return reports

    def stop(self):
        """Nothing left to do: ``final_summary`` stopped the workers, to have their reports in the results."""


class Worker:
    """One worker: its shard, its shuffling and its straggler delays (seeded by its number, not its rank)."""

    def __init__(self, number, x, y, args, channel, flops_per_batch):
        self.number, self.x, self.y, self.args = number, x, y, args
        self.work = Work(channel, flops_per_batch)  # what it computes and sends, epoch by epoch
        self.work_by_epoch = {}
        self.shuffle = shuffle_generator(args.seed, number - 1)
        self.straggler = np.random.default_rng([args.seed, number])
        self.order, self.position = torch.randperm(len(self.y), generator=self.shuffle), 0

    def state_dict(self):
        """For the checkpoint: where it is in its shard, its random generators and its work so far."""
        return {**snapshot({"shuffle": self.shuffle, "straggler": self.straggler}), "order": self.order,
                "position": self.position, "work_by_epoch": {e: dict(w) for e, w in self.work_by_epoch.items()}}

    def load_state_dict(self, state):
        restore({"shuffle": self.shuffle, "straggler": self.straggler}, state)
        self.order, self.position = state["order"], state["position"]
        self.work_by_epoch = {e: collections.Counter(w) for e, w in state["work_by_epoch"].items()}

    def next_batch(self):
        if self.position + self.args.batch_size > len(self.y):  # a new pass over the shard
            self.order, self.position = torch.randperm(len(self.y), generator=self.shuffle), 0
        idx = self.order[self.position:self.position + self.args.batch_size].to(self.x.device)
        self.position += self.args.batch_size
        return self.x[idx], self.y[idx]


class WorkerRank:
    """A worker rank: for the newest parameters, a gradient from each of its workers (placement.py) on that
    worker's next mini-batch, one worker after another; its own workers' shards only."""

    def __init__(self, channel, args, data, device, placement):
        process_policy.apply(process_policy.side_by_side(channel.host, placement.num_ranks), channel)
        self.channel, self.args, self.device = channel, args, device
        shards, shard_sizes = data
        flops = {}  # the workers compute alike: a batch's FLOPs counted once for all
        self.workers = [Worker(k, x.to(device), y.to(device), args, channel, flops) for k, (x, y) in shards.items()]
        self.steps_per_epoch = steps_per_epoch(shard_sizes, args.batch_size)
        self.model = build(args.model, args.seed).to(device)
        self.params_buf = torch.empty(sum(p.numel() for p in self.model.parameters()) + 1)
        self.handlers = {Tag.PARAMS: self.compute_gradients, Tag.STOP: self.stopped}

    def state_dict(self):
        return {worker.number: worker.state_dict() for worker in self.workers}

    def load_state_dict(self, state):
        for worker in self.workers:
            worker.load_state_dict(state[worker.number])

    def compute_gradients(self):
        self.channel.recv(self.params_buf.numpy(), SERVER, Tag.PARAMS)
        while self.channel.comm.Iprobe(SERVER, Tag.PARAMS):  # a straggler skips to the newest parameters
            self.channel.recv(self.params_buf.numpy(), SERVER, Tag.PARAMS)
        load_flat_parameters(self.model, self.params_buf[:-1].to(self.device))
        epoch = int(self.params_buf[-1]) // self.steps_per_epoch + 1
        for worker in self.workers:
            with worker.work.active():
                with worker.work.batch(self.args.batch_size):
                    gradient, loss = worker_gradient(self.model, *worker.next_batch())
                if self.args.straggler_delay_ms:
                    time.sleep(worker.straggler.exponential(self.args.straggler_delay_ms) / 1000)
                # a new array: sends do not wait
                message = torch.cat([gradient.cpu(), self.params_buf[-1:],
                                     torch.tensor([loss, float(worker.number)])])
                self.channel.send(message.numpy(), SERVER, Tag.GRADIENT)
            totals = worker.work_by_epoch.setdefault(epoch, collections.Counter())
            totals.update(worker.work.take())
            totals["bytes_received"] += self.params_buf.nbytes  # one message a rank, counted once a worker

    def stopped(self):
        """Stop, with every worker's work epoch by epoch (work.py) and this rank's peak memory."""
        self.channel.send_obj({"work": {w.number: w.work_by_epoch for w in self.workers},
                               "peak_rss_mb": peak_rss_mb()}, SERVER, Tag.STOPPED)
