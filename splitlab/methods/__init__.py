"""How each method runs over MPI: the common set-up and serve loop (mpi_method), split learning's roles and
variants, federated averaging and synchronous SGD."""
