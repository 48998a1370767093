"""Process-wide settings that make small CPU training steps fast; import this before torch.

* OpenMP worker threads wait passively, spinning 20,000 times first (``GOMP_SPINCOUNT``): long spins steal the
  core from the rank that has work when ranks outnumber cores; too short a spin makes every small operation of a
  LeNet-5 step wake a sleeping worker. Only what is unset is set, so an experiment can override it.
* glibc keeps freed memory in the process instead of handing it back and faulting it in again on the next batch.

The measurements behind both are in docs/performance.md.
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
