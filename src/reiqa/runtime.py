"""Process-level settings: the device a job runs on, and the C allocator for long CPU jobs
(training, scoring, benchmarks). Nothing here runs at import."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from reiqa.errors import ConfigError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None where the C library is not glibc (or not found). Looked up once: finding it
    runs ``ldconfig -p`` in a child process."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_allocator() -> bool:
    """Make glibc keep large freed blocks for reuse instead of unmapping them.

    The view pipeline allocates and frees many multi-megabyte tensors per item; by default glibc
    returns each to the OS and the next allocation page-faults it back in, which cost about 12 %
    of the CPU time of a training item in our benchmark, and halved the speed of scoring
    (``reiqa score`` and ``features`` call it; call it once in your own scoring scripts).
    Returns False (and changes nothing) where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31))


def release_memory() -> bool:
    """Give the memory that freed tensors left in glibc's heaps back to the OS (``malloc_trim``).

    After :func:`tune_allocator` the heaps keep every freed block; at interpreter exit the shared
    libraries' clean-up then pages in about 100 MB of their code on top of them, which made the
    end of ``reiqa score`` its peak RSS. Returns False where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextmanager
def tuned_allocator() -> Iterator[None]:
    """:func:`tune_allocator` for a job, then :func:`release_memory` when it ends (also on error)."""
    tune_allocator()
    try:
        yield
    finally:
        release_memory()


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device a user named: 'auto' (CUDA when torch sees a GPU, else CPU), 'cpu',
    'cuda', 'cuda:N' or 'mps'. Checked, so that a job fails here and not in the middle of a run.

    Raises:
        ConfigError: the name is not a device, or names a CUDA device that torch does not see.
    """
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {name!r} ({exc}); use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA was asked for but torch sees no GPU; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: torch sees {torch.cuda.device_count()} GPU(s), numbered from 0"
            )
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r}: MPS is not available on this machine; use cpu or auto")
    return device
