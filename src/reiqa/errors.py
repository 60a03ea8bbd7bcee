"""Exception types. Each failure a user can cause has its own class, which also subclasses the
matching built-in so that either can be caught."""

from __future__ import annotations

import unicodedata

#: escapes of the control characters most often met in names
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: bidirectional overrides and isolates, which reorder what a terminal shows
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: object) -> str:
    """``str(text)`` safe to put in one log line or one terminal line: control characters
    (newlines, carriage returns, escape sequences, line and paragraph separators, bidirectional
    overrides) written as
    backslash escapes, so that a file or upload name cannot forge a line or recolour a terminal.
    Text without them comes back unchanged."""
    text = str(text)
    if all(ch.isprintable() or ch == " " for ch in text):
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ord(ch) < 0x100 or ch in _BIDI:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:  # format characters (zero-width joiners in emoji names...) are kept
            out.append(ch)
    return "".join(out)


class ReiqaError(Exception):
    """Base class of every error reiqa raises on purpose."""


class ImageLoadError(ReiqaError, ValueError):
    """An image file could not be decoded. The message starts with the path, then the cause; the
    path in the message is escaped by :func:`printable` (one line, whatever the name holds).

    Attributes:
        path: the file that failed, as given (not escaped).
        reason: a short machine-friendly cause, one of ``missing``, ``not-a-file``, ``empty``,
            ``truncated``, ``not-an-image``, ``unsupported-format``, ``too-many-pixels``,
            ``unsupported-mode``, ``unreadable``.
    """

    def __init__(self, path: object, reason: str, message: str) -> None:
        super().__init__(f"{printable(path)}: {message}")
        self.path = path
        self.reason = reason


class UnknownNameError(ReiqaError, KeyError):
    """A name (distortion, dataset, preset) is not in its registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class ConfigError(ReiqaError, ValueError):
    """A configuration value (training config, view config, feature options, model card) is out of
    range, of the wrong type, or unknown. The message names the field and the allowed values."""


class DataError(ReiqaError, ValueError):
    """A list of input images could not be built (no images found, a CSV list without a path
    column)."""


class CheckpointError(ReiqaError, ValueError):
    """A checkpoint or encoder file is missing, unreadable, or does not fit the model."""


class FeatureError(ReiqaError, ValueError):
    """A feature file or cache is unusable."""


class ModelError(ReiqaError, ValueError):
    """A model bundle is missing files, or its parts do not fit together."""


class DatasetError(ReiqaError, ValueError):
    """A database folder or label file is missing, malformed, or lists images that are not there.

    The message starts with the file or folder, says what is wrong, then how to fix it."""


class RegressorError(ReiqaError, ValueError):
    """Bad training data for the regressor, or an unreadable regressor file."""


class EvaluationError(ReiqaError, ValueError):
    """The protocol cannot run on these inputs."""


class OutputError(ReiqaError, ValueError):
    """An output file cannot be written: a bad name, a folder that cannot be written, another run
    writing it, or an existing file that reiqa did not write, or wrote with another model."""
