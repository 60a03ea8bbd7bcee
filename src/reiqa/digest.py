"""Content digests of files: what feature caches and provenance records key on.

A leaf module: it imports only the standard library, so that any part may use it.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["file_sha256"]

#: bytes read at a time
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as hex (what feature caches and provenance records key on).

    Raises:
        OSError: the file cannot be read (FileNotFoundError, IsADirectoryError, ...).
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
