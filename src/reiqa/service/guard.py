"""The guard in front of the service's app (an ASGI middleware run before anything reads a
body): the access line and metrics of every request, the version headers, the bearer token, the
declared Content-Length, and the number of scoring requests answered at once."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from reiqa.service.logs import log_request
from reiqa.service.metrics import ServiceMetrics, path_label
from reiqa.version import __version__

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: paths served without the token: probes, the page and the API description hold no data
OPEN_PATHS = frozenset({"/", "/livez", "/readyz", "/openapi.json", "/docs"})
#: the paths that decode and score, limited by ``max_concurrent``
WORK_PATHS = frozenset({"/score", "/diagnose"})
#: methods counted under their own name in the metrics (any other is "other")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
#: status logged (as nginx does) for a request whose client went away before its answer
CLIENT_GONE = 499


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: Headers) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


@dataclass
class Outcome:
    """What the handler of a request did, for its access line and metrics (in ``scope``)."""

    images: int = 0
    failed: int = 0
    note: str | None = None


class Guard:
    """ASGI middleware run before anything reads the body: the access line and the metrics of
    every request, the version headers, the bearer token (when set), the upload limit on the
    declared Content-Length, and ``max_concurrent`` requests that decode and score."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_upload_bytes: int,
        max_concurrent: int,
        metrics: ServiceMetrics,
        model_id: str,
    ) -> None:
        self.app, self.max_upload_bytes, self.max_concurrent = app, max_upload_bytes, max_concurrent
        self.expected = f"Bearer {token}".encode() if token else None
        self.metrics = metrics
        self.in_progress = 0
        self.stamp = [(b"x-reiqa-version", __version__.encode()), (b"x-reiqa-model", model_id.encode())]
        metrics.in_progress.set_function(lambda: self.in_progress)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        outcome = scope["reiqa"] = Outcome()
        status = [CLIENT_GONE]

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), *self.stamp]
            await send(message)

        working = False
        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                code, body, headers = refusal
                return await _send_json(stamped, code, body, headers)
            working = scope["path"] in WORK_PATHS and scope["method"] == "POST"
            if working:
                if self.in_progress >= self.max_concurrent:
                    working = False
                    self.metrics.rejected.labels(reason="busy").inc()
                    message = (
                        f"busy: {self.max_concurrent} requests are being answered (--max-concurrent); retry"
                    )
                    return await _send_json(stamped, 503, {"error": message}, [(b"retry-after", b"1")])
                self.in_progress += 1
            await self.app(scope, receive, stamped)
        except Exception:
            if status[0] == CLIENT_GONE:  # nothing was sent: uvicorn answers 500, logs the traceback
                status[0] = 500
            raise
        finally:
            if working:
                self.in_progress -= 1
            elapsed = time.perf_counter() - start
            path = path_label(scope["path"])
            code = CLIENT_GONE if outcome.note == "client gone" else status[0]
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(method=method, path=path, status=str(code)).inc()
            self.metrics.duration.labels(path=path).observe(elapsed)
            client = scope.get("client")
            log_request(
                client=f"{client[0]}:{client[1]}" if client else "-",
                method=scope["method"],
                path=scope["path"],
                status=code,
                ms=elapsed * 1000,
                images=outcome.images,
                failed=outcome.failed,
                note=outcome.note,
            )

    def _refusal(self, scope: Scope) -> tuple[int, dict[str, Any], Headers] | None:
        headers = dict(scope["headers"])
        if self.expected is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                why = "missing" if not given else "wrong"
                error = f"{why} token: send 'Authorization: Bearer <token>'"
                return 401, {"error": error}, [(b"www-authenticate", b"Bearer")]
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return 400, {"error": "Content-Length is not a number"}, []
            if int(length) > self.max_upload_bytes:
                self.metrics.rejected.labels(reason="too-large").inc()
                return 413, too_large(self.max_upload_bytes), []
        return None


def too_large(limit: int) -> dict[str, str]:
    return {"error": f"the body is larger than the service's limit of {limit / 2**20:g} MB (--max-upload-mb)"}
