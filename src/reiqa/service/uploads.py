"""Read a ``multipart/form-data`` body into memory: the parts named ``file``, in the order sent.

Starlette's own form reader spools uploads larger than 1 MiB to temporary files; the service
keeps everything in memory (the body is already bounded by ``--max-upload-mb``), so nothing an
upload holds is ever written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

FILE_FIELD = "file"
#: RFC 2046 allows 70 characters; python-multipart refuses more than 256
MAX_BOUNDARY = 256


class UploadError(ValueError):
    """The body is not a multipart form the service can read; the message says why."""


class TooManyFiles(UploadError):
    """More ``file`` parts than the service takes in one request."""


@dataclass
class UploadedFile:
    """One ``file`` part: the name the client gave (a label only, never a path) and its bytes."""

    filename: str
    data: bytes


def _header_value(value: bytes) -> tuple[str, dict[str, str]]:
    kind, params = parse_options_header(value)
    return kind.decode("latin-1").lower(), {
        k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in params.items()
    }


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type; UploadError otherwise."""
    if not content_type:
        raise UploadError("no Content-Type: send multipart/form-data with one or more parts named 'file'")
    kind, params = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data":
        raise UploadError(
            f"Content-Type is {kind.decode('latin-1')!r}: send multipart/form-data with one or more parts "
            "named 'file'"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError("multipart/form-data without a boundary parameter")
    if len(boundary) > MAX_BOUNDARY:
        raise UploadError(
            f"the multipart boundary is {len(boundary)} characters long, more than {MAX_BOUNDARY} "
            "(RFC 2046 allows 70)"
        )
    return boundary


def read_files(body: bytes, content_type: str | None, *, max_files: int = 1000) -> list[UploadedFile]:
    """The parts named ``file`` of a multipart body, in order; other parts are ignored.

    Raises:
        UploadError: not multipart/form-data, malformed, or no ``file`` part;
            TooManyFiles (an UploadError) for more than ``max_files`` of them.
    """
    boundary = boundary_of(content_type)
    parts: list[tuple[dict[str, bytes], bytearray]] = []
    field_name = bytearray()
    field_value = bytearray()
    ended: list[bool] = []

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        field_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(field_name).decode("latin-1").lower()] = bytes(field_value)
        field_name.clear()
        field_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(  # the boundary is checked: its constructor raises outside parsing
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_end": lambda: ended.append(True),
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise UploadError(f"malformed multipart body: {exc}") from exc
    if not ended:
        raise UploadError("the multipart body ends before its closing boundary (was the upload cut short?)")
    files = []
    for headers, data in parts:
        disposition = headers.get("content-disposition")
        if disposition is None:
            continue
        _, params = _header_value(disposition)
        if params.get("name") != FILE_FIELD:
            continue
        files.append(UploadedFile(params.get("filename") or f"file {len(files) + 1}", bytes(data)))
        if len(files) > max_files:
            raise TooManyFiles(
                f"more than {max_files} files in one request (--max-files); send them in several"
            )
    if not files:
        raise UploadError("no part named 'file': send each image as a form part named 'file'")
    return files
