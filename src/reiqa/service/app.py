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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from reiqa.inference import DiagnosisRecord, ReIQA
from reiqa.service import schemas
from reiqa.service.batching import ScoreBatcher
from reiqa.service.guard import OPEN_PATHS, ASGIApp, Guard
from reiqa.service.metrics import CONTENT_TYPE, ServiceMetrics
from reiqa.service.scoring import Limits, Record, Scoring, score_pairs
from reiqa.version import __version__


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
        score_pairs(model),
        window_s=batch_window_s,
        max_images=max_batch_images,
        on_batch=lambda images, _: metrics.batch_size.observe(images),
    )
    scoring = Scoring(model, bounds, metrics, batcher)

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
