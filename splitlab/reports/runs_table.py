"""results/runs.csv: one row per results file under a results folder."""

import csv
import statistics
from pathlib import Path

from splitlab.runs import chosen_epoch, epoch_bytes, read_run

# results/runs.csv: one row per results file under the results folder (docs/findings.md, "Every run in one table")
RUN_COLUMNS = ["file", "method", "variant", "cut_layer", "clients", "partition", "alpha", "seed", "nopeek",
               "noise_std", "status", "best_test_acc", "best_epoch", "epochs", "mean_epoch_s", "bytes_per_epoch"]


def run_row(path, run):
    """The runs table's row of one results file."""
    config, epochs = run.get("config", {}), run["epochs"]
    best = chosen_epoch(epochs)
    clients = len(run["shard_sizes"]) if run.get("shard_sizes") else \
        config.get("clients") if run["method"] == "federated" else \
        config["world_size"] - 1 if config.get("world_size", 1) > 1 else None
    return {"file": str(path), "method": run["method"], "variant": config.get("variant"),
            "cut_layer": config.get("cut_layer"), "clients": clients, "partition": config.get("partition"),
            "alpha": config.get("alpha") if config.get("partition") == "dirichlet" else None,
            "seed": config.get("seed"), "nopeek": config.get("nopeek"), "noise_std": config.get("noise_std"),
            "status": run.get("status"), "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
            "epochs": len(epochs), "mean_epoch_s": statistics.mean(e["epoch_time_s"] for e in epochs),
            "bytes_per_epoch": statistics.mean(epoch_bytes(e) for e in epochs)}


def runs_table(results_dir):
    """Every readable results file under ``results_dir``, one row each (files that are not runs are skipped)."""
    rows = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            rows.append(run_row(path.relative_to(results_dir), read_run(path)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # an attack's scores, a file cut off mid-write: not a run
    return rows


def write_runs_table(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, RUN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
