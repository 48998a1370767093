"""The error every layer raises for bad input found after argument parsing."""


class InputError(Exception):
    """Bad input found after argument parsing (world size, partition...): exit status 2, no traceback."""
