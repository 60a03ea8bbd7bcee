"""reiqa: no-reference image quality assessment with Re-IQA.

Nothing heavy happens at import: no weights are read and nothing is downloaded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from reiqa.errors import ImageLoadError, ReiqaError, UnknownNameError
from reiqa.version import __version__

if TYPE_CHECKING:
    from reiqa.inference import ReIQA

__all__ = ["ImageLoadError", "ReIQA", "ReiqaError", "UnknownNameError", "__version__", "load"]


def load(
    path: str | os.PathLike[str] | None = None, *, backend: str = "torch", device: str | None = None
) -> ReIQA:
    """A Re-IQA model: the embedded default (no argument) or a model folder, on ``device`` ('cpu'
    when None, 'cuda', 'auto', ...); ``backend``: the encoders' engine, 'auto' or a name of
    ``reiqa.engines.ENGINES``. See ``reiqa.inference.load``."""
    from reiqa.inference import load as _load

    return _load(path, backend=backend, device=device)


def __getattr__(name: str) -> object:
    # reiqa.ReIQA without importing torch when reiqa is imported
    if name == "ReIQA":
        from reiqa.inference import ReIQA

        return ReIQA
    raise AttributeError(f"module 'reiqa' has no attribute {name!r}")
