"""Keep freed memory in the process between forward passes (glibc only).

A full-batch forward on the CPU allocates a few activation tensors of about 1 MB and
frees them again, thousands of times in a row. glibc's ``malloc`` hands the freed top of
its heap back to the OS as soon as more than twice its (adaptive) mmap threshold lies
free there, so whether the next forward page-faults all its activations in afresh
depends on where the last long-lived allocation happened to land. Measured on the digits
MLP (51 x 51 grid, 2 cores): runs took 2.4-3.3 s, with up to 590,000 minor page faults
(one 0.9 MB tensor per point), and 2.1-2.2 s with a handful once freed memory is kept.

:func:`retain_freed_memory` fixes glibc's thresholds so that allocations up to 32 MB
come from the heap and up to ``limit`` bytes of freed memory stay for reuse. The
evaluator calls it for CPU runs; set ``LANDSCAPE_WIDGETS_MALLOPT=0`` to leave the
process's allocator untouched.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

#: glibc's ``mallopt`` parameter numbers (``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on 64-bit systems.
MMAP_THRESHOLD = 32 * 2**20

_applied: int | None = None


def retain_freed_memory(limit: int = 128 * 2**20) -> bool:
    """Let the process keep up to ``limit`` bytes of freed heap memory for reuse.

    Parameters
    ----------
    limit : int
        Free memory at the top of the heap beyond which glibc returns it to the OS.

    Returns
    -------
    bool
        Whether the thresholds are set: ``False`` where the C library is not glibc
        (macOS, Windows, musl) or ``LANDSCAPE_WIDGETS_MALLOPT=0``. Calling it again
        with the same ``limit`` does nothing more.
    """
    global _applied
    if _applied == limit:
        return True
    if os.environ.get("LANDSCAPE_WIDGETS_MALLOPT", "1") == "0":
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, int(limit)) == 1
    _applied = limit if ok else None
    return ok


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL("libc.so.6")
