"""The grids of runs (study, privacy) and the reports drawn from their results files."""
