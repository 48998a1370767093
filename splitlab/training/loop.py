"""The epoch loop every method shares: train, evaluate, record, stop on a plateau or at a target accuracy."""

import math
import sys
import time

from tqdm import tqdm

from splitlab.runs import watched_acc, watched_loss


class Plateau:
    """Watches a loss (runs.watched_loss: validation's with --validation, else the test set's): decays the
    learning rate once ``lr_patience`` epochs in a row have made no new best (and again after each further
    ``lr_patience``), and says stop once there has been none for ``patience`` epochs in a row (0: never stop
    early)."""

    def __init__(self, patience, lr, decay, lr_patience):
        self.patience, self.lr, self.decay, self.lr_patience = patience, lr, decay, lr_patience
        self.best_loss = float("inf")
        self.epochs_without_improvement = 0

    def should_stop(self, loss):
        if loss < self.best_loss:
            self.best_loss = loss
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
            if self.epochs_without_improvement % self.lr_patience == 0:
                self.lr *= self.decay
        return self.patience > 0 and self.epochs_without_improvement >= self.patience


def progress_enabled(args):
    return not args.no_progress and sys.stderr.isatty()


def progress(args, iterable, total, desc):
    """``iterable`` with a tqdm bar of ``total`` steps, silent when progress is off."""
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True,
                disable=not progress_enabled(args))


def at_chance(record):
    """True when the test accuracy is at most 1.5 times what guessing gets (15 % with 10 classes)."""
    classes = [a for a in record.get("test_class_acc") or [] if a is not None]
    return bool(classes) and record["test_acc"] <= 1.5 / len(classes)


def fit(args, results, train_one_epoch, evaluate_model, final_info=dict, save=None, resumed=None):
    """The loop every method shares: train an epoch, evaluate, record, stop early (on a plateau, or at
    ``--stop-at``); returns the results dict.

    ``train_one_epoch(epoch, lr)`` trains with learning rate ``lr`` and returns a dict with at least
    ``train_loss`` (and ``bytes_sent``, ``bytes_received`` where processes talk); ``evaluate_model()`` one with
    ``test_loss`` and ``test_acc``.
    A loss that is not finite ends the run with status ``diverged`` (and ``diverged_at_epoch``).
    ``final_info()`` gives keys to add to the results once training is over (those under ``per_epoch``, a list
    of values each, go into the epochs' records). A crash, in training or in
    ``final_info``, marks the results file ``failed`` and keeps every completed epoch.
    ``save(epoch, loop_state)``, if given, checkpoints every rank after each epoch (checkpoint.py); ``resumed``
    is the ``loop_state`` of the epoch a resumed run goes on after.
    """
    plateau = Plateau(args.patience, args.lr, args.lr_decay, args.lr_patience)
    status, first, start = "completed", 1, time.perf_counter()
    if resumed:
        status, first, start = resumed["status"], resumed["epoch"] + 1, start - resumed["elapsed_s"]
        vars(plateau).update(resumed["plateau"])
        results.resume(resumed)
        print(f"resuming after epoch {resumed['epoch']} (status then: {status})", file=sys.stderr, flush=True)
    try:
        for epoch in range(first, args.epochs + 1) if status == "completed" else ():
            epoch_start = time.perf_counter()
            record = {"epoch": epoch, "lr": plateau.lr, "bytes_sent": 0, "bytes_received": 0,
                      **train_one_epoch(epoch, plateau.lr)}
            train_time = time.perf_counter() - epoch_start
            evaluation = evaluate_model()
            for key in ("bytes_sent", "bytes_received"):  # evaluation traffic belongs to the epoch too
                record[key] += evaluation.pop(key, 0)
            record.update(evaluation)
            now = time.perf_counter()
            record.update(epoch_time_s=now - epoch_start, train_time_s=train_time, elapsed_s=now - start)
            if at_chance(record):
                record["at_chance"] = True
                print(f"warning: epoch {epoch}: test accuracy {record['test_acc']:.1%} is at chance level: the model "
                      "predicts about one class (see docs/experiments.md, 'A run that does not learn')",
                      file=sys.stderr)
            results.add_epoch(record)
            validation = (f"val loss {record['val_loss']:.4f}  val acc {record['val_acc']:.4f}  "
                          if "val_loss" in record else "")
            print(f"epoch {epoch:3d}  train loss {record['train_loss']:.4f}  {validation}test loss "
                  f"{record['test_loss']:.4f}  test acc {record['test_acc']:.4f}  {record['epoch_time_s']:.1f} s",
                  file=sys.stderr, flush=True)
            bad = [key for key in ("train_loss", "test_loss") if not math.isfinite(record[key])]
            if bad:
                status = "diverged"
                print(f"error: epoch {epoch}: the run diverged: {' and '.join(bad)} {record[bad[0]]}; the results say "
                      "status diverged (a smaller --lr may help)", file=sys.stderr, flush=True)
            elif plateau.should_stop(watched_loss(record)) or (args.stop_at and watched_acc(record) >= args.stop_at):
                status = "stopped_early"
            if save:
                saving = time.perf_counter()
                save(epoch, {"epoch": epoch, "status": status, "plateau": vars(plateau),
                             "elapsed_s": record["elapsed_s"], "epochs": results.data["epochs"],
                             "best": results.data["best"],
                             "resumed_after_epochs": results.data.get("resumed_after_epochs", [])})
                record["checkpoint_s"] = time.perf_counter() - saving  # in the file from the next write on
            if status != "completed":
                break
        final = final_info()
    except BaseException as exc:
        results.finish("failed", **failure(exc))
        raise
    for key, values in final.pop("per_epoch", {}).items():  # keys only known at the end (sync SGD's work)
        for record, value in zip(results.data["epochs"], values):
            record[key] = value
    epochs = results.data["epochs"]
    diverged = {"diverged_at_epoch": epochs[-1]["epoch"]} if status == "diverged" else {}
    results.finish(status, epochs_at_chance=[e["epoch"] for e in epochs if e.get("at_chance")], **diverged, **final)
    return results.data


def failure(exc):
    """The results keys of a failed run: ``error`` (one line) and, where another rank failed, ``failed_rank``."""
    rank = getattr(exc, "rank", None)
    return {"error": f"{type(exc).__name__}: {exc}", **({"failed_rank": rank} if rank is not None else {})}
