"""Checkpoints, so that a killed run resumes where it stopped (``--resume``).

    <results-dir>/<run-name>.ckpt/
        rank0-epoch7.pt   each rank's own state after epoch 7: its parts, optimizers, random generators; rank 0's
        rank1-epoch7.pt   also the loop's (the learning-rate plateau, the epochs' records)
        done.json         {"epoch": 7, "flags": ..., "world_size": ...}: written once every rank has written epoch 7

An epoch counts only once ``done.json`` names it, so a rank killed while writing leaves the last epoch every rank
finished. Each rank keeps its files of that epoch and of the one being written, nothing older. The files are read
with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers, never code.
"""

import json
from pathlib import Path

import torch

from splitlab.errors import InputError
from splitlab.training.results import check_results_dir
from splitlab.training.results_guard import atomic_path, write_json_atomic

# Flags that may differ on --resume: they do not change the experiment (where it is written, how it is shown,
# how long a stalled peer is waited for, and how many epochs it may go on for).
SAME_EXPERIMENT = {"epochs", "resume", "no_progress", "results_dir", "run_name", "stall_timeout", "data_dir"}


class Checkpoint:
    """One rank's view of the run's checkpoint folder."""

    def __init__(self, args, rank=0, world_size=1):
        self.folder = Path(args.results_dir) / f"{args.run_name}.ckpt"
        self.rank = rank
        self.setup = {"flags": {k: v for k, v in vars(args).items() if k not in SAME_EXPERIMENT},
                      "world_size": world_size}

    def file(self, epoch):
        return self.folder / f"rank{self.rank}-epoch{epoch}.pt"

    def own_files(self):
        """This rank's files, by epoch."""
        return {int(path.stem.split("epoch")[1]): path for path in self.folder.glob(f"rank{self.rank}-epoch*.pt")}

    def drop_own(self, keep):
        """Delete this rank's files of the epochs ``keep(epoch)`` is false for."""
        for epoch, path in self.own_files().items():
            if not keep(epoch):
                path.unlink()

    def committed_epoch(self, resume):
        """Rank 0, at set-up: the epoch to resume after (0 for a fresh start). With ``resume``, the checkpoint's
        flags must be this run's (InputError naming those that differ); without, the old checkpoint is dropped."""
        done = self.folder / "done.json"
        if not resume or not done.exists():
            done.unlink(missing_ok=True)
            return 0
        saved, now = json.loads(done.read_text()), self.setup
        differ = [f"--{k.replace('_', '-')}" for k in sorted({*saved["flags"], *now["flags"]})
                  if saved["flags"].get(k, "(unset)") != now["flags"].get(k, "(unset)")]
        if saved["world_size"] != now["world_size"]:
            differ.append(f"the number of MPI processes ({saved['world_size']} then, {now['world_size']} now)")
        if differ:
            named, verb = ", ".join(differ), "differs" if len(differ) == 1 else "differ"
            raise InputError(f"--resume: this run's checkpoint in {self.folder} was made with other settings: {named} "
                             f"{verb} (only --epochs and the output options may change); run without --resume to "
                             "start again")
        return saved["epoch"]

    def load(self, epoch):
        """This rank's state after ``epoch`` (None for 0, a fresh start). Drops this rank's other files: older ones,
        or a newer epoch that not every rank finished."""
        self.drop_own(lambda other: other == epoch)
        if epoch == 0:
            return None
        if not self.file(epoch).exists():
            raise InputError(f"--resume: rank {self.rank}'s checkpoint of epoch {epoch} is missing "
                             f"({self.file(epoch)}); run without --resume to start again")
        try:
            state = torch.load(self.file(epoch), weights_only=True)
        except Exception as exc:  # torch.load raises many kinds (unpickling, zip, version): all mean "not ours"
            raise InputError(f"--resume: cannot read {self.file(epoch)}: it is not a checkpoint of this suite "
                             f"({type(exc).__name__}); run without --resume to start again") from None
        restore_global_rng(state.pop("global_rng"))
        return state

    def save(self, epoch, state):
        """Write this rank's ``state`` after ``epoch`` atomically, then drop its files older than the epoch before."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.file(epoch)) as tmp:
            torch.save({**state, "global_rng": global_rng()}, tmp)
        self.drop_own(lambda other: other >= epoch - 1)

    def commit(self, epoch):
        """Rank 0, once every rank has saved ``epoch``: from now on the run resumes after it."""
        write_json_atomic(self.folder / "done.json", {"epoch": epoch, **self.setup})

    def keep_last(self):
        """Drop this rank's files but the newest (at the end of a run, once that one is committed)."""
        newest = max(self.own_files(), default=0)
        self.drop_own(lambda epoch: epoch == newest)


def in_one_process(args, parts):
    """A run in one process: restore ``parts`` (name -> model, optimizer, generator, or anything with
    ``state_dict``) from the checkpoint if resumed; returns ``(save, loop_state)`` for loop.fit."""
    check_results_dir(args.results_dir)
    checkpoint = Checkpoint(args)
    state = checkpoint.load(checkpoint.committed_epoch(args.resume))
    if state:
        restore(parts, state["parts"])

    def save(epoch, loop_state):
        checkpoint.save(epoch, {"parts": snapshot(parts), "loop": loop_state})
        checkpoint.commit(epoch)
        checkpoint.keep_last()

    return save, state and state["loop"]


def snapshot(parts):
    """The state of each of ``parts`` (name -> a model, an optimizer, a torch or numpy generator, or anything with
    ``state_dict()``), as a checkpoint holds it."""
    return {name: generator_state(part) if is_generator(part) else part.state_dict() for name, part in parts.items()}


def restore(parts, state):
    """Put ``state`` (from :func:`snapshot`) back into ``parts``."""
    for name, part in parts.items():
        if is_generator(part):
            set_generator_state(part, state[name])
        else:
            part.load_state_dict(state[name])


def is_generator(part):
    return isinstance(part, torch.Generator) or hasattr(part, "bit_generator")


def generator_state(generator):
    """A torch or numpy generator's state, as a checkpoint holds it."""
    return generator.get_state() if isinstance(generator, torch.Generator) else generator.bit_generator.state


def set_generator_state(generator, state):
    if isinstance(generator, torch.Generator):
        generator.set_state(state)
    else:
        generator.bit_generator.state = state


def global_rng():
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_global_rng(state):
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
