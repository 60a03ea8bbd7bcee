"""Process-level settings: the device a job runs on, and the C allocator for long CPU jobs
(training, scoring, benchmarks). Nothing here runs at import."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from reiqa.errors import ConfigError

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
