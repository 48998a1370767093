"""The suite's library, by layer (docs/design.md, "Layout"); the scripts at the top of the repository use it.

Importing it applies the process settings that must precede torch (net/runtime.py), so a script that imports
anything of the suite before torch gets them.

- ``net``: processes and messages: the process settings, threads per rank, the protocol, the messaging layer,
  the link model and the placement of clients on ranks;
- ``training``: what every method shares: the command line, the steps, the epoch loop, the results file;
- ``costs``: what a method costs: bytes in closed form, a role's work, the decision model;
- ``privacy``: what a method leaks: distance correlation, reconstruction and label attacks;
- ``methods``: how each method runs over MPI: split learning's roles and variants, FedAvg, sync SGD;
- ``reports``: the figures and tables drawn from results files.

A layer imports only from those before it in this list (tests/test_layers.py). ``runs`` reads results files
for the grids, the map and the reports; ``errors`` holds the one error of bad input.
"""

from splitlab.net import runtime  # noqa: F401  (OpenMP's waiting and glibc's memory, set before torch loads)
