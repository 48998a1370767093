"""The reports drawn from results files: a module a study, each with its loader, its table (markdown) and its
figure; plot_results.py draws them all. They read results files only, and load no torch (but bandwidth.py, which
needs the networks' sizes, and decision.py, whose model times batches)."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
