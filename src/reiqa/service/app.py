"""The HTTP scoring service: a FastAPI app around one loaded model.

Endpoints (the interface users script against):

- ``GET /health`` -> ``{"status": "ok"}`` (the app exists only once the model is loaded);
- ``GET /model`` -> the model card: name, ``higher_is_better``, ``score_range``, ``features``,
  ``model_id``, the encoders;
- ``POST /score``, ``multipart/form-data`` with parts named ``file`` -> ``{"results": [{"filename",
  "score", "error"}, ...]}`` in the order sent; a file that cannot be read gets ``score: null``
  and the reason;
- ``POST /diagnose``, the same request -> the same results with ``issue``, ``severity`` and
  ``probabilities`` (null for a file that cannot be read); 501 when the model has no diagnosis
  head (``GET /model``'s ``diagnosis`` is then null);
- ``GET /`` -> the page (``page.html``): drop photos, see them sorted by score, download a CSV.

Errors are JSON ``{"error": "..."}``: 400 for a body that is not a multipart form with ``file``
parts, 401 without the token (when one is set; the page itself is served without it, since it
holds no data, and asks for the token), 404, 405, and 413 for a body over the limit, refused
from its Content-Length before it is read, or as soon as a streamed body passes the limit.

Uploads stay in memory: their names are labels, never paths, and nothing is written to disk.
Decoding runs in worker threads and the encoders in the batcher's thread, so the event loop
never waits on either.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from torch import Tensor

from reiqa.inference import DiagnosisRecord, ReIQA, ScoreRecord
from reiqa.io import DEFAULT_MAX_PIXELS, Failure
from reiqa.service.batching import ScoreBatcher
from reiqa.service.uploads import UploadedFile, UploadError, read_files

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: paths served without the token: the page holds no data (it asks for the token itself)
OPEN_PATHS = frozenset({"/"})


def model_card(model: ReIQA) -> dict[str, Any]:
    """What ``GET /model`` returns."""
    card = model.card
    return {
        "name": model.name,
        "higher_is_better": model.higher_is_better,
        "score_range": list(model.score_range) if model.score_range else None,
        "features": model.options.to_dict(),
        "model_id": model.model_id,
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


class Guard:
    """ASGI middleware run before anything reads the body: the bearer token (when set), and the
    upload limit on the declared Content-Length."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_upload_bytes: int) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.expected is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                why = "missing" if not given else "wrong"
                return await _send_json(
                    send,
                    401,
                    {"error": f"{why} token: send 'Authorization: Bearer <token>'"},
                    [(b"www-authenticate", b"Bearer")],
                )
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _send_json(send, 400, {"error": "Content-Length is not a number"}, [])
            if int(length) > self.max_upload_bytes:
                return await _send_json(send, 413, _too_large(self.max_upload_bytes), [])
        return await self.app(scope, receive, send)


def _too_large(limit: int) -> dict[str, str]:
    return {"error": f"the body is larger than the service's limit of {limit / 2**20:g} MB (--max-upload-mb)"}


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body; stops reading once it passes ``limit`` bytes (a chunked body)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _BodyTooLarge
    return bytes(body)


def _prepare_all(model: ReIQA, files: list[UploadedFile], max_pixels: int | None) -> list[Tensor | Failure]:
    """Each upload prepared at once (decoded and brought to the model's size cap: a request of
    large photos holds capped images, not full-size ones), or the Failure that says why not."""
    return [model.prepare(f.data, name=f.filename, max_pixels=max_pixels) for f in files]


Record = ScoreRecord | DiagnosisRecord
#: what the batcher carries: (name, prepared item, whether the request wants a diagnosis)
Job = tuple[str, Tensor | Failure, bool]


async def _score(
    model: ReIQA,
    batcher: ScoreBatcher,
    names: list[str],
    items: list[Tensor | Failure],
    *,
    diagnose: bool = False,
) -> list[Record]:
    """The records of one request, in order: its images through the batcher (with other
    requests' images), its failures at once (they need no model, and a request of bad files
    never waits for one). ``diagnose``: DiagnosisRecords (the model must have a head)."""
    bad = [i for i, item in enumerate(items) if isinstance(item, Failure)]
    failing = model.diagnose_batch if diagnose else model.score_batch
    failed = iter(failing([names[i] for i in bad], [items[i] for i in bad]))
    images = [
        (name, item, diagnose)
        for name, item in zip(names, items, strict=True)
        if not isinstance(item, Failure)
    ]
    scored = iter(await batcher.score(images) if images else [])
    return [next(failed) if isinstance(item, Failure) else next(scored) for item in items]


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


def create_app(
    model: ReIQA,
    *,
    max_upload_bytes: int = 50 * 2**20,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    token: str | None = None,
    batch_window_s: float = 0.01,
    max_batch_images: int = 16,
    max_files: int = 1000,
) -> ASGIApp:
    """The service around ``model`` (already loaded, on its device), as an ASGI app for uvicorn."""
    batcher = ScoreBatcher(_score_pairs(model), window_s=batch_window_s, max_images=max_batch_images)
    card = model_card(model)
    page = resources.files("reiqa.service").joinpath("page.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="reiqa", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        return card

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    async def answer(
        request: Request, result: Callable[[Record], dict[str, Any]], *, diagnose: bool = False
    ) -> JSONResponse:
        try:
            body = await _read_body(request, max_upload_bytes)
        except _BodyTooLarge:
            too_large = _too_large(max_upload_bytes)
            return JSONResponse(too_large, status_code=413, headers={"connection": "close"})
        try:
            files = read_files(body, request.headers.get("content-type"), max_files=max_files)
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        del body
        items = await asyncio.to_thread(_prepare_all, model, files, max_pixels)
        records = await _score(model, batcher, [f.filename for f in files], items, diagnose=diagnose)
        return JSONResponse({"results": [result(r) for r in records]})

    @app.post("/score")
    async def score(request: Request) -> JSONResponse:
        return await answer(request, lambda r: {"filename": r.path, "score": r.score, "error": r.error})

    @app.post("/diagnose")
    async def diagnose(request: Request) -> JSONResponse:
        if model.diagnosis is None:
            message = (
                f"{model.name}: this model has no diagnosis head; fit one with reiqa fit-diagnosis "
                "and serve that model folder"
            )
            return JSONResponse({"error": message}, status_code=501)
        return await answer(request, _diagnosis_result, diagnose=True)

    return Guard(app, token=token, max_upload_bytes=max_upload_bytes)
