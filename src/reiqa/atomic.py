"""The one writer of files that must be whole: a crash leaves either the old file or the new one,
never half of one. Every such file in reiqa goes through :func:`atomic_path` (directly, for
library writers that take a path, or through the ``write_*_atomic`` helpers): a temporary file in
the same folder, flushed to disk, moved over the target, and the move made durable by syncing the
folder. Append logs (``metrics.jsonl``) and folder swaps (training checkpoints) are not files
written whole; the swap still uses :func:`fsync_dir`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "fsync_dir", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` for a writer to create (safetensors ``save_file``, PIL
    ``save``, ``savefig``, ``torch.save``, an ONNX save), moved over ``path`` when the block ends.

    The temporary file is hidden (``.{name}.{random}.tmp``) in ``path``'s folder, which is created
    if missing. Its name does not end with ``path``'s suffix: give writers that choose the format
    by suffix the format (``savefig(format=...)``) or an open file (``np.save(f, ...)``). On a
    normal exit the file is synced to disk, given an existing target's permissions (a new one
    keeps those the writer created it with), renamed over ``path``, and the folder synced. On an
    exception the temporary file is removed, the target left as it was, and the error raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        _fsync_file(tmp)
        with contextlib.suppress(OSError):  # no target yet: keep the new file's own mode
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str, *, errors: str = "strict") -> None:
    """:func:`write_bytes_atomic` of ``text`` as UTF-8 (``errors='surrogateescape'`` keeps file
    names that are not UTF-8 byte for byte)."""
    write_bytes_atomic(path, text.encode("utf-8", errors))


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """:func:`write_text_atomic` of ``json.dumps(obj, indent=indent)`` (no trailing newline)."""
    write_text_atomic(path, json.dumps(obj, indent=indent))
