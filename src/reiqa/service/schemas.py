"""What the service's endpoints take and answer, for ``GET /openapi.json`` and ``GET /docs``.

The handlers build their JSON themselves (the multipart reader is the service's own, see
``reiqa.service.uploads``); these models describe it, and the tests check the answers against
them.
"""

from __future__ import annotations

import html
import json
from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="What is wrong, and what to do about it.")


class Status(BaseModel):
    status: str = Field(description="'ok', or for /readyz before the model is warm, 'warming up'.")


class ScoreResult(BaseModel):
    filename: str = Field(description="The name the client gave the part (a label, never a path).")
    score: float | None = Field(description="The quality score; null when the file could not be read.")
    error: str | None = Field(description="Why the file could not be read; null when it was scored.")


class ScoreResponse(BaseModel):
    results: list[ScoreResult] = Field(description="One result per 'file' part, in the order sent.")


class DiagnosisResult(ScoreResult):
    issue: str | None = Field(description="The most likely problem: none, blur, noise, compression, ...")
    severity: float | None = Field(description="How bad the problem is, in [0, 1].")
    probabilities: dict[str, float] | None = Field(description="The probability of each issue.")


class DiagnoseResponse(BaseModel):
    results: list[DiagnosisResult] = Field(description="One result per 'file' part, in the order sent.")


class ModelCard(BaseModel):
    name: str
    version: str = Field(description="The reiqa version serving the model.")
    model_id: str = Field(description="Identifies the weights, regressor and feature options.")
    higher_is_better: bool
    score_range: list[float] | None
    features: dict[str, Any]
    quality: dict[str, Any] | None
    content: dict[str, Any] | None
    score_source: str | None
    diagnosis: dict[str, Any] | None = Field(description="The diagnosis head, or null without one.")


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One part named 'file' per image (JPEG, PNG, WebP, HEIC...)",
                        }
                    },
                }
            }
        },
    }
}


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorBody, "description": description}
    if retry:
        out["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    return out


UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Not a multipart form with parts named 'file'"),
    401: _error("Missing or wrong token"),
    408: _error("The body was not sent in time"),
    413: _error("Over a limit: body size, files or pixels in one request"),
    503: _error("Busy (too many requests or pixels in flight) or timed out", retry=True),
}


def docs_page(spec: dict[str, Any]) -> str:
    """A self-contained page describing ``spec`` (no scripts or styles from elsewhere: the
    service runs where nothing outside can be reached)."""
    rows = []
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            responses = "".join(
                f"<li><b>{html.escape(str(code))}</b> {html.escape(r.get('description', ''))}</li>"
                for code, r in op.get("responses", {}).items()
            )
            body = op.get("requestBody", {}).get("content", {})
            request = f"<p>Body: <code>{html.escape(', '.join(body))}</code></p>" if body else ""
            rows.append(
                f"<section><h2><span>{method.upper()}</span> <code>{html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('summary', ''))}</p>"
                f"<p>{html.escape(op.get('description', ''))}</p>{request}<ul>{responses}</ul></section>"
            )
    schemas = html.escape(json.dumps(spec.get("components", {}).get("schemas", {}), indent=2))
    title = html.escape(spec.get("info", {}).get("title", "API"))
    version = html.escape(spec.get("info", {}).get("version", ""))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 58rem; margin: 2rem auto; padding: 0 1rem;
  color: #222 }}
section {{ border-top: 1px solid #ddd; padding: .5rem 0 }}
h2 {{ font-size: 1.05rem; margin: .5rem 0 }}
h2 span {{ display: inline-block; min-width: 4.5rem; color: #fff; background: #2d6a4f; border-radius: 4px;
  padding: 0 .4rem; text-align: center }}
pre {{ background: #f6f6f6; padding: 1rem; overflow: auto; font-size: 13px }}
</style></head><body>
<h1>{title} {version}</h1>
<p>The machine-readable description is <a href="openapi.json">openapi.json</a>
(OpenAPI {html.escape(spec.get("openapi", ""))}).</p>
{"".join(rows)}
<h2>Schemas</h2><pre>{schemas}</pre>
</body></html>
"""
