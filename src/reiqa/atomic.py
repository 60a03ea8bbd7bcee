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


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


#: the permissions of a new file (``open`` with the process's umask); read once, at import
_NEW_FILE_MODE = 0o666 & ~_umask()


def _mode_for(path: Path) -> int:
    """An existing target's permissions, else those ``open`` gives a new file (some writers, as
    safetensors' ``save_file``, create theirs readable by the owner only)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return _NEW_FILE_MODE


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` for a writer to create (safetensors ``save_file``, PIL
    ``save``, ``savefig``, ``torch.save``, an ONNX save), moved over ``path`` when the block ends.

    The temporary file is hidden (``.{name}.{random}.tmp``) in ``path``'s folder, which is created
    if missing. Its name does not end with ``path``'s suffix: give writers that choose the format
    by suffix the format (``savefig(format=...)``) or an open file (``np.save(f, ...)``). On a
    normal exit the file is synced to disk, given an existing target's permissions (a new one:
    those ``open`` gives a new file under the umask), renamed over ``path``, and the folder synced. On an
    exception the temporary file is removed, the target left as it was, and the error raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        _fsync_file(tmp)
        with contextlib.suppress(OSError):
            os.chmod(tmp, _mode_for(path))
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
