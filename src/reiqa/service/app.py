"""The HTTP scoring service: a FastAPI app around one loaded model.

Endpoints (the interface users script against; ``GET /openapi.json`` describes each):

- ``GET /livez`` -> ``{"status": "ok"}`` while the process serves; ``GET /readyz`` -> 200 once the
  model is loaded and warmed up, 503 before; both without the token, for probes;
- ``GET /health`` -> ``{"status": "ok"}`` (kept for compatibility; behind the token when set);
- ``GET /model`` -> the model card: name, version, ``model_id``, ``higher_is_better``,
  ``score_range``, ``features``, the encoders, the diagnosis head;
- ``POST /score``, ``multipart/form-data`` with parts named ``file`` -> ``{"results": [{"filename",
  "score", "error"}, ...]}`` in the order sent; a file that cannot be read gets ``score: null``
  and the reason;
- ``POST /diagnose``, the same request -> the same results with ``issue``, ``severity`` and
  ``probabilities``; 501 when the model has no diagnosis head;
- ``GET /metrics`` -> Prometheus text format (behind the token when set);
- ``GET /openapi.json`` and ``GET /docs`` (a page made from it, with nothing from elsewhere);
- ``GET /`` -> the page (``page.html``): drop photos, see them sorted by score, download a CSV.

Every response carries ``X-Reiqa-Version`` and ``X-Reiqa-Model`` (the model id). Errors are JSON
``{"error": "..."}``: 400 for a body that is not a multipart form with ``file`` parts, 401
without the token, 404, 405, 408 when a body stalls for ``read_timeout_s``, 413 for a body over
the limit (refused from its Content-Length before it is read, or as soon as a streamed body
passes it), more than ``max_files`` files, or more pixels than ``request_pixels``; 503 with
``Retry-After`` beyond ``max_concurrent`` requests, or when a request waits for pixels or the
encoders longer than ``request_timeout_s``.

Uploads stay in memory: their names are labels, never paths, and nothing is written to disk.
Decoding runs in worker threads, one file of a request at a time, and the encoders in the
batcher's thread, so the event loop never waits on either. A request whose client hangs up is
dropped: its files are no longer decoded and its images leave the encoders' queue. Every request
is one access line (``reiqa.service.logs``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from torch import Tensor

from reiqa.inference import DiagnosisRecord, ReIQA, ScoreRecord
from reiqa.io import DEFAULT_MAX_PIXELS, Failure
from reiqa.runtime import release_memory
from reiqa.service import schemas
from reiqa.service.batching import ScoreBatcher
from reiqa.service.limits import BudgetTimeout, PixelBudget, declared_pixels, request_cost
from reiqa.service.logs import log_request
from reiqa.service.metrics import CONTENT_TYPE, ServiceMetrics, path_label
from reiqa.service.uploads import TooManyFiles, UploadedFile, UploadError, read_files
from reiqa.version import __version__

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("reiqa.service")

#: paths served without the token: probes, the page and the API description hold no data
OPEN_PATHS = frozenset({"/", "/livez", "/readyz", "/openapi.json", "/docs"})
#: the paths that decode and score, limited by ``max_concurrent``
WORK_PATHS = frozenset({"/score", "/diagnose"})
#: methods counted under their own name in the metrics (any other is "other")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
#: status logged (as nginx does) for a request whose client went away before its answer
CLIENT_GONE = 499
#: after a request charged this many pixels, freed memory goes back to the OS: the allocator is
#: tuned to keep freed blocks (``reiqa.runtime.tune_allocator``), each decoding thread in its own
#: heap, so without it the resident memory would grow to a large decode per thread, not stay
#: within the pixel budget
TRIM_AFTER_PIXELS = 4_000_000


def model_card(model: ReIQA) -> dict[str, Any]:
    """What ``GET /model`` returns."""
    card = model.card
    return {
        "name": model.name,
        "version": __version__,
        "model_id": model.model_id,
        "higher_is_better": model.higher_is_better,
        "score_range": list(model.score_range) if model.score_range else None,
        "features": model.options.to_dict(),
        "quality": {"arch": card.quality.arch} if card.quality else None,
        "content": {"arch": card.content.arch} if card.content else None,
        "score_source": card.score.source,
        "diagnosis": model.diagnosis.summary() if model.diagnosis is not None else None,
    }


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
        app: FastAPI,
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
                return 413, _too_large(self.max_upload_bytes), []
        return None


def _too_large(limit: int) -> dict[str, str]:
    return {"error": f"the body is larger than the service's limit of {limit / 2**20:g} MB (--max-upload-mb)"}


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
                413, _too_large(limit)["error"], reason="too-large", headers={"connection": "close"}
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


def _score_pairs(model: ReIQA) -> Callable[[list[Job]], list[Record]]:
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


def _diagnosis_result(record: Record) -> dict[str, Any]:
    """A result of ``POST /diagnose``: ``/score``'s fields, then the diagnosis."""
    assert isinstance(record, DiagnosisRecord)  # the batch of a model with a head diagnoses
    return {
        "filename": record.path,
        "score": record.score,
        "issue": record.issue,
        "severity": record.severity,
        "probabilities": record.probabilities,
        "error": record.error,
    }


def _score_result(record: Record) -> dict[str, Any]:
    return {"filename": record.path, "score": record.score, "error": record.error}


def _register_heif() -> None:
    """Let the pixel budget read HEIC headers too (reiqa.io registers the opener only at the
    first HEIC it decodes)."""
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


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
        sizes = await asyncio.to_thread(lambda: [declared_pixels(f.data) for f in files])
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


def create_app(
    model: ReIQA,
    *,
    token: str | None = None,
    batch_window_s: float = 0.01,
    max_batch_images: int = 16,
    warmup: bool = True,
    **limits: Any,
) -> ASGIApp:
    """The service around ``model`` (already loaded, on its device), as an ASGI app for uvicorn.

    Args:
        token: the bearer token every request but the open paths must bear; None: none.
        batch_window_s, max_batch_images: how the batcher gathers concurrent requests' images.
        warmup: score one synthetic image once the app starts; ``/readyz`` is 503 until then.
        limits: the fields of :class:`Limits`:

            - ``max_upload_bytes``: largest request body (413 beyond);
            - ``max_pixels``: largest width * height of one image (that file's error beyond);
            - ``max_files``: most ``file`` parts in one request (413 beyond);
            - ``max_concurrent``: most scoring requests answered at once (503 beyond);
            - ``request_timeout_s``: most seconds from a request's headers to its answer (its
              body, its wait for pixels and for the encoders); 503 past it, its work dropped;
            - ``read_timeout_s``: most seconds between two chunks of a body (408 past it);
            - ``inflight_pixels``: most decoded pixels held at once by all requests (see
              ``reiqa.service.limits``): image memory stays under about 20 bytes each;
            - ``request_pixels``: most pixels one request may be charged (413 beyond), at most
              ``inflight_pixels``.
    """
    bounds = Limits(**limits)
    metrics = ServiceMetrics(
        version=__version__, model_id=model.model_id, pixel_budget=bounds.inflight_pixels
    )
    batcher = ScoreBatcher(
        _score_pairs(model),
        window_s=batch_window_s,
        max_images=max_batch_images,
        on_batch=lambda images, _: metrics.batch_size.observe(images),
    )
    scoring = Scoring(model, bounds, metrics, batcher)
    _register_heif()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        warming = asyncio.create_task(scoring.warm()) if warmup else None
        if warming is None:
            scoring.ready.set()
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            await batcher.stop()

    app = FastAPI(
        title="reiqa",
        version=__version__,
        summary="No-reference image quality scores (Re-IQA) over HTTP",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.batcher, app.state.scoring, app.state.metrics = batcher, scoring, metrics
    _add_routes(app, scoring)
    if token is not None:
        _declare_bearer(app)
    return Guard(
        app,
        token=token,
        max_upload_bytes=bounds.max_upload_bytes,
        max_concurrent=bounds.max_concurrent,
        metrics=metrics,
        model_id=model.model_id,
    )


def _add_routes(app: FastAPI, scoring: Scoring) -> None:
    """The endpoints of :func:`create_app`."""
    model, metrics = scoring.model, scoring.metrics
    card = model_card(model)
    page = resources.files("reiqa.service").joinpath("page.html").read_text(encoding="utf-8")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/livez", response_model=schemas.Status, summary="The process is up")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=schemas.Status,
        summary="The model is loaded and warmed up",
        responses={503: {"model": schemas.Status, "description": "Still warming up"}},
    )
    async def readyz() -> JSONResponse:
        if not scoring.ready.is_set():
            return JSONResponse({"status": "warming up"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/health", response_model=schemas.Status, summary="Up (kept for compatibility; use /livez)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", response_model=schemas.ModelCard, summary="The model card")
    async def model_info() -> dict[str, Any]:
        return card

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics_text() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(schemas.docs_page(app.openapi()))

    upload = {"openapi_extra": schemas.UPLOAD_BODY, "responses": schemas.UPLOAD_ERRORS}

    @app.post("/score", response_model=schemas.ScoreResponse, summary="Score images", **upload)
    async def score(request: Request) -> Response:
        return await scoring.answer(request, _score_result, diagnose=False)

    no_head = {501: {"model": schemas.ErrorBody, "description": "No diagnosis head"}}

    @app.post(
        "/diagnose",
        response_model=schemas.DiagnoseResponse,
        summary="Score images and name what is wrong with each",
        openapi_extra=schemas.UPLOAD_BODY,
        responses={**schemas.UPLOAD_ERRORS, **no_head},
    )
    async def diagnose(request: Request) -> Response:
        if model.diagnosis is None:
            message = (
                f"{model.name}: this model has no diagnosis head; fit one with reiqa fit-diagnosis "
                "and serve that model folder"
            )
            return JSONResponse({"error": message}, status_code=501)
        return await scoring.answer(request, _diagnosis_result, diagnose=True)


def _declare_bearer(app: FastAPI) -> None:
    """The OpenAPI description says which paths need the bearer token."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = plain()
            spec.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in spec["paths"].items():
                if path not in OPEN_PATHS:
                    for op in operations.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
