"""Process-wide settings that make small CPU training steps fast; import this before torch.

Every script imports it first. Each setting was measured on a 2-core machine (see README, "Speed"):

* OpenMP worker threads spin for a while after every parallel region (libgomp's default: 300,000 spins).
  With several processes on few cores those spinning threads steal the core from the process that has work.
  Too short a spin costs too: a worker that fell asleep between two of the many small operations of a LeNet-5
  step must be woken for the next. 20,000 spins: regular learning's epoch took 0.87x (median of 5 interleaved
  runs) and 0.96x (4 runs) the time it took with 2,000, and 0.93x with 100,000; split learning with 2 ranks
  was faster too, with 11 ranks the same within the noise (2026-11-26). To re-measure, run an epoch with
  ``GOMP_SPINCOUNT`` set in the environment: this module sets only what is unset.
* glibc hands freed memory back to the kernel and asks for it again on the next batch; the page faults that
  follow cost about a third of a step. Keeping freed memory in the process avoids them.
"""

import ctypes
import os

# Environment settings only take effect if set before torch loads libgomp, hence at import time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30  # keep up to 1 GiB of freed memory; a LeNet-5 step churns a few MB


def _glibc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


def _keep_freed_memory():
    libc = _glibc()
    if libc:
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)


def release_freed_memory():
    """Hand what has been freed so far back to the kernel, once. For after set-up: a rank that loaded the whole
    data set and kept only its shard would otherwise hold on to the rest (up to the 1 GiB kept above)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)


_keep_freed_memory()
