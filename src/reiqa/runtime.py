"""Process-level settings for long CPU jobs (training, scoring, benchmarks). Nothing here runs at
import."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> bool:
    """Make glibc keep large freed blocks for reuse instead of unmapping them.

    The view pipeline allocates and frees many multi-megabyte tensors per item; by default glibc
    returns each to the OS and the next allocation page-faults it back in, which cost about 12 %
    of the CPU time of a training item in our benchmark, and halved the speed of scoring
    (``reiqa score`` and ``features`` call it; call it once in your own scoring scripts).
    Returns False (and changes nothing) where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 31))
