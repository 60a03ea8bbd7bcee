"""The service's log lines: one access line per request, and ``--log-format json`` for log
collectors (one JSON object per line, for every message of the service).

Everything a client chooses (paths, file names) is escaped with ``reiqa.errors.printable`` in
plain lines, and is a JSON string in JSON lines, so that no client can forge a line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from reiqa.errors import ReiqaError, printable

LOG_FORMATS = ("plain", "json")

access_log = logging.getLogger("reiqa.service.access")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The message alone, with control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure(log_format: str = "plain", *, level: int = logging.INFO) -> None:
    """Write reiqa's messages (the service's included) and uvicorn's errors to stderr in
    ``log_format``: the handlers of the ``reiqa`` logger (the command line's) get the format, or
    a stderr handler is added when it has none."""
    if log_format not in LOG_FORMATS:
        raise ReiqaError(f"--log-format {log_format}: use one of {', '.join(LOG_FORMATS)}")
    formatter = JsonFormatter() if log_format == "json" else PlainFormatter("%(message)s")
    root = logging.getLogger("reiqa")
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
        root.propagate = False
    for handler in root.handlers:
        handler.setFormatter(formatter)
    root.setLevel(min(root.level or level, level))
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.handlers[:] = root.handlers
    uvicorn_errors.setLevel(logging.WARNING)
    uvicorn_errors.propagate = False


def log_request(
    *,
    client: str,
    method: str,
    path: str,
    status: int,
    ms: float,
    images: int = 0,
    failed: int = 0,
    note: str | None = None,
) -> None:
    """One access line: ``client "METHOD path" status images=N failed=N ms`` (plain), or the same
    fields as JSON. ``note`` says what happened to a request that got no ordinary answer
    (``client gone``, ``timed out``)."""
    fields = {
        "client": client,
        "method": method,
        "path": path,
        "status": status,
        "images": images,
        "failed": failed,
        "ms": round(ms, 1),
    }
    if note:
        fields["note"] = note
    request = f"{printable(method)} {printable(path)}"
    text = f'{printable(client)} "{request}" {status} images={images} failed={failed} {ms:.1f}ms'
    if note:
        text += f" ({note})"
    access_log.info(text, extra={"fields": fields})
