"""uvicorn's HTTP protocol with a deadline for a request's headers.

uvicorn closes a keep-alive connection that stays idle after a response, but it waits forever
for the first request of a new connection, and for headers sent a byte at a time (any byte
cancels its keep-alive timer). Each connection here gets ``header_timeout_s`` from its first
byte (or from its opening, or from the previous response) to finish a request's headers; past
it, the service answers 408 and closes the connection. The body has its own idle time-out, in
the app (``reiqa.service.app``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger("reiqa.service")

_TIMEOUT_BODY = b'{"error": "the request headers were not sent in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def with_header_timeout(header_timeout_s: float) -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn would pick (httptools or h11), closing connections whose
    request headers take longer than ``header_timeout_s`` seconds."""
    base: Any = AutoHTTPProtocol

    class HeaderDeadlineProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            idle = self._waiting_for_headers()
            super().data_received(data)
            if self.cycle is not before and not self._waiting_for_headers():
                self._disarm()  # a new request's headers are complete
            elif idle and self._header_timer is None and not self.transport.is_closing():
                self._arm()  # the first bytes of the next request on a kept-alive connection

        def on_response_complete(self) -> None:
            super().on_response_complete()  # uvicorn's keep-alive timer takes the idle part

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._waiting_for_headers():
                return
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("%s: closed, its request headers took more than %gs", client, header_timeout_s)
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    return HeaderDeadlineProtocol
