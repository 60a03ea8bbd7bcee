"""The work of ``POST /score`` and ``/diagnose``: read the body (with its time-outs), charge its
pixels to the budget, decode each file, batch the images with other requests' for the encoders,
and drop it all when the client goes or the request times out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from torch import Tensor

from reiqa.inference import DiagnosisRecord, ReIQA, ScoreRecord
from reiqa.io import DEFAULT_MAX_PIXELS, Failure, image_size
from reiqa.runtime import release_memory
from reiqa.service.batching import ScoreBatcher
from reiqa.service.guard import CLIENT_GONE, Outcome, Receive, too_large
from reiqa.service.limits import BudgetTimeout, PixelBudget, request_cost
from reiqa.service.metrics import ServiceMetrics
from reiqa.service.uploads import TooManyFiles, UploadedFile, UploadError, read_files

log = logging.getLogger("reiqa.service")

#: after a request charged this many pixels, freed memory goes back to the OS: the allocator is
#: tuned to keep freed blocks (``reiqa.runtime.tune_allocator``), each decoding thread in its own
#: heap, so without it the resident memory would grow to a large decode per thread, not stay
#: within the pixel budget
TRIM_AFTER_PIXELS = 4_000_000


class _Refused(Exception):
    """A request answered with an error before (or instead of) scoring."""

    def __init__(
        self, status: int, message: str, *, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.headers = status, reason, headers or {}


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int, idle_s: float, deadline: float) -> bytes:
    """The request body; 413 once it passes ``limit`` bytes, 408 when no chunk arrives for
    ``idle_s`` seconds or the request's deadline passes, _ClientGone on a hang-up."""
    body = bytearray()
    while True:
        wait = min(idle_s, deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(receive(), max(wait, 0.001))
        except TimeoutError:
            raise _Refused(
                408, f"the body stalled: no data for {idle_s:g}s (--read-timeout)", reason="timeout"
            ) from None
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body += message.get("body", b"")
        if len(body) > limit:
            raise _Refused(
                413, too_large(limit)["error"], reason="too-large", headers={"connection": "close"}
            )
        if not message.get("more_body", False):
            return bytes(body)


async def _until_disconnect(receive: Receive) -> None:
    """Returns once the client has hung up (the body is already read, so the server has nothing
    else to say until then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


Record = ScoreRecord | DiagnosisRecord
#: what the batcher carries: (name, prepared item, whether the request wants a diagnosis)
Job = tuple[str, Tensor | Failure, bool]


def score_pairs(model: ReIQA) -> Callable[[list[Job]], list[Record]]:
    """What the batcher runs: the jobs of several requests -> their records, in order. The images
    of ``/score`` are only scored: the diagnosis head's tiles (up to 36 per photo through the
    quality encoder) are paid for by ``/diagnose`` requests alone."""

    def score(jobs: list[Job]) -> list[Record]:
        out: list[Record | None] = [None] * len(jobs)
        for wanted, run in ((False, model.score_batch), (True, model.diagnose_batch)):
            at = [i for i, job in enumerate(jobs) if job[2] == wanted]
            if at:
                for i, r in zip(at, run([jobs[i][0] for i in at], [jobs[i][1] for i in at]), strict=True):
                    out[i] = r
        return out  # type: ignore[return-value]

    return score


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the service; see :func:`create_app`."""

    max_upload_bytes: int = 50 * 2**20
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_files: int = 256
    max_concurrent: int = 32
    request_timeout_s: float = 120.0
    read_timeout_s: float = 15.0
    inflight_pixels: int = 64_000_000
    request_pixels: int = 64_000_000

    def __post_init__(self) -> None:
        if self.request_pixels > self.inflight_pixels:
            raise ValueError(
                f"request_pixels ({self.request_pixels}) must not exceed inflight_pixels "
                f"({self.inflight_pixels})"
            )


class Scoring:
    """The work of ``POST /score`` and ``/diagnose``: read the body, charge its pixels, decode
    each file, batch the images with other requests', and drop it all when the client goes."""

    def __init__(self, model: ReIQA, limits: Limits, metrics: ServiceMetrics, batcher: ScoreBatcher) -> None:
        self.model, self.limits, self.metrics, self.batcher = model, limits, metrics, batcher
        self.budget = PixelBudget(limits.inflight_pixels)
        self.ready = asyncio.Event()
        metrics.queue_depth.set_function(lambda: batcher.queued_images)
        metrics.pixels_in_flight.set_function(lambda: self.budget.in_use)
        metrics.pixels_peak.set_function(lambda: self.budget.peak)

    async def warm(self) -> None:
        """One synthetic image through the encoders; ``ready`` is set afterwards."""
        image = self.model.prepare(torch.rand(3, 224, 224), name="warm-up")
        try:
            await self.batcher.score([("warm-up", image, False)])
        except Exception:  # the service still answers; the first request pays instead
            log.exception("reiqa serve: warming up the model failed")
        self.ready.set()
        log.info("reiqa serve: ready (model %s warmed up)", self.model.model_id)

    async def _prepare(self, files: list[UploadedFile], outcome: Outcome) -> list[Tensor | Failure]:
        """Each upload decoded, one at a time, and brought to the model's size cap, or the
        Failure that says why not. A cancelled request stops at the next file."""
        items = []
        for f in files:
            item = await asyncio.to_thread(
                self.model.prepare, f.data, name=f.filename, max_pixels=self.limits.max_pixels
            )
            items.append(item)
            f.data = b""  # the bytes are no longer needed
        outcome.failed = sum(isinstance(item, Failure) for item in items)
        return items

    async def _work(self, files: list[UploadedFile], outcome: Outcome, diagnose: bool) -> list[Record]:
        """The records of one request, in order: its images through the batcher (with other
        requests' images), its failures at once (they need no model)."""
        items = await self._prepare(files, outcome)
        names = [f.filename for f in files]
        bad = [i for i, item in enumerate(items) if isinstance(item, Failure)]
        failing = self.model.diagnose_batch if diagnose else self.model.score_batch
        failed = iter(failing([names[i] for i in bad], [items[i] for i in bad]))
        images = [
            (name, item, diagnose)
            for name, item in zip(names, items, strict=True)
            if not isinstance(item, Failure)
        ]
        scored = iter(await self.batcher.score(images) if images else [])
        return [next(failed) if isinstance(item, Failure) else next(scored) for item in items]

    async def _files(self, request: Request, deadline: float) -> list[UploadedFile]:
        limits = self.limits
        body = await _read_body(request.receive, limits.max_upload_bytes, limits.read_timeout_s, deadline)
        try:
            return read_files(body, request.headers.get("content-type"), max_files=limits.max_files)
        except TooManyFiles as exc:
            raise _Refused(413, str(exc), reason="files") from None
        except UploadError as exc:
            raise _Refused(400, str(exc), reason="bad-request") from None

    async def _cost(self, files: list[UploadedFile]) -> int:
        """The pixels the request is charged (413 over the per-request limit)."""
        sizes = await asyncio.to_thread(lambda: [image_size(f.data, f.filename) for f in files])
        cost = request_cost(sizes, max_side=self.model.options.max_side, max_pixels=self.limits.max_pixels)
        if cost > self.limits.request_pixels:
            raise _Refused(
                413,
                f"the request's images need {cost / 1e6:.1f} megapixels (the largest decoded, all held "
                f"until scored), more than the limit of {self.limits.request_pixels / 1e6:g} per request "
                "(--request-megapixels); send them in several requests",
                reason="pixels",
            )
        return cost

    async def answer(
        self, request: Request, result: Callable[[Record], dict[str, Any]], diagnose: bool
    ) -> Response:
        """The response to one scoring request (an error's, or the results')."""
        outcome: Outcome = request.scope["reiqa"]
        deadline = time.monotonic() + self.limits.request_timeout_s
        try:
            files = await self._files(request, deadline)
            outcome.images = len(files)
            cost = await self._cost(files)
            try:
                async with self.budget.reserve(cost, timeout_s=max(deadline - time.monotonic(), 0.001)):
                    try:
                        records = await self._until_done_or_gone(
                            self._work(files, outcome, diagnose), request, deadline
                        )
                    finally:
                        if cost >= TRIM_AFTER_PIXELS:
                            await asyncio.to_thread(release_memory)
            except BudgetTimeout:
                raise _Refused(
                    503,
                    f"busy: waited {self.limits.request_timeout_s:g}s for other requests' images to be "
                    "scored; retry",
                    reason="pixels",
                    headers={"retry-after": "5"},
                ) from None
        except _ClientGone:
            outcome.note = "client gone"
            self.metrics.disconnects.inc()
            return Response(status_code=CLIENT_GONE)  # nobody reads it
        except _Refused as exc:
            self.metrics.rejected.labels(reason=exc.reason).inc()
            if exc.status == 408:
                outcome.note = "body stalled"
                exc.headers = {**exc.headers, "connection": "close"}
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)
        self.metrics.images.labels(outcome="scored").inc(len(records) - outcome.failed)
        self.metrics.images.labels(outcome="failed").inc(outcome.failed)
        return JSONResponse({"results": [result(r) for r in records]})

    async def _until_done_or_gone(
        self, job: Awaitable[list[Record]], request: Request, deadline: float
    ) -> list[Record]:
        """``job``'s records; cancels it when the client hangs up (_ClientGone) or the deadline
        passes (503)."""
        task = asyncio.ensure_future(job)
        gone = asyncio.ensure_future(_until_disconnect(request.receive))
        try:
            done, _ = await asyncio.wait(
                {task, gone},
                timeout=max(deadline - time.monotonic(), 0.001),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            gone.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if gone in done:
            raise _ClientGone
        raise _Refused(
            503,
            f"timed out: not answered within {self.limits.request_timeout_s:g}s (--request-timeout); "
            "retry later",
            reason="timeout",
            headers={"retry-after": "5"},
        )
