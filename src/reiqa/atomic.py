"""Writing files so that a crash leaves either the old file or the new one, never half of one:
a temporary file in the same folder, flushed to disk, moved over the target, and the move made
durable by syncing the folder."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["fsync_dir", "write_bytes_atomic", "write_text_atomic"]


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


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping an existing file's permissions."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str, *, errors: str = "strict") -> None:
    """:func:`write_bytes_atomic` of ``text`` as UTF-8 (``errors='surrogateescape'`` keeps file
    names that are not UTF-8 byte for byte)."""
    write_bytes_atomic(path, text.encode("utf-8", errors))
