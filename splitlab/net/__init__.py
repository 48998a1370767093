"""Processes and messages: process settings, threads per rank, the protocol, the messaging layer over MPI, the
link model (without MPI) and the placement of clients on ranks."""
