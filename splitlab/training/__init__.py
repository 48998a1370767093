"""What every training script shares: the command line, the train and evaluate steps, the epoch loop and the
results file with its guard."""
