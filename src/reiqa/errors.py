"""Exception types. Each failure a user can cause has its own class, which also subclasses the
matching built-in so that either can be caught."""

from __future__ import annotations


class ReiqaError(Exception):
    """Base class of every error reiqa raises on purpose."""


class ImageLoadError(ReiqaError, ValueError):
    """An image file could not be decoded. The message starts with the path, then the cause.

    Attributes:
        path: the file that failed.
        reason: a short machine-friendly cause, one of ``missing``, ``not-a-file``, ``empty``,
            ``truncated``, ``not-an-image``, ``too-many-pixels``, ``unsupported-mode``,
            ``unreadable``.
    """

    def __init__(self, path: object, reason: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason


class UnknownNameError(ReiqaError, KeyError):
    """A name (distortion, dataset, preset) is not in its registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])
