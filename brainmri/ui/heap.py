"""The C heap of a long-running page: fewer arenas, and their free pages handed back to the system.

Every request allocates images, tensors and figures of a few kB to a few MB and frees them when it answers. glibc's
allocator keeps what a thread frees in that thread's arena (up to eight per core) and returns to the system only the
free space at an arena's top, never the free pages between blocks still in use: the process's resident memory climbs
towards the peak of every arena while the live data stays flat (the soak benchmark: +10 % over an hour, open files and
cache flat, no page view outliving the session limit). ``malloc_trim(0)`` hands back every free page of every arena;
``mallopt(M_ARENA_MAX)`` caps how many arenas the server's threads spread over. Both are glibc's own; on another C
library (musl, macOS) these functions do nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import cache

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h


@cache
def _glibc():
    """glibc's ``malloc_trim``/``mallopt`` when this process runs on glibc, else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def trim() -> bool:
    """Hand every arena's free pages back to the system; True when glibc gave some back."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


def limit_arenas(arenas: int = 2) -> bool:
    """At most ``arenas`` malloc arenas for the threads started from now on, unless ``MALLOC_ARENA_MAX`` in the
    environment already says how many (glibc read it at start-up); True when the limit was set here."""
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    done = bool(libc.mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.warning("heap: the allocator refused an arena limit of %d", arenas)
    return done
