"""Give the memory an analysis freed back to the system.

glibc's malloc keeps freed blocks in its arenas (one per thread that allocated, up to 8 per core) for reuse,
and only returns the top of each heap, so a process that decoded and detected on hundreds of large frames
keeps most of its peak resident long after the frames are gone: a server that analysed several 720p clips
held 4.3 GB while idle. ``malloc_trim(0)`` returns every free page of every arena at once (a few
milliseconds); ``release_memory`` runs it after a garbage collection, at the end of every analysis.
Elsewhere than glibc it only collects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):      # not glibc (musl, macOS): nothing to trim
        return None


_LIBC = _libc()


def release_memory() -> bool:
    """Collect garbage, then return the heap's free pages to the system; True when the C library trimmed."""
    gc.collect()
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


def resident_mb() -> float | None:
    """This process's resident set size now, in MB (None where /proc is not there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
