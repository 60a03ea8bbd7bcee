"""The service's parts in process: the multipart reader, the batcher, and the app's promise that
uploads never reach the disk."""

from __future__ import annotations

import asyncio
import builtins
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reiqa.service.batching import ScoreBatcher
from reiqa.service.uploads import UploadError, read_files
from tests.service.conftest import httpx


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_read_files_keeps_file_parts_in_order_and_skips_others() -> None:
    body, ctype = _multipart(
        [
            ("file", "b.jpg", b"\x00\r\n--b0und"),
            ("note", None, b"hello"),
            ("file", "a.png", b""),
            ("file", None, b"x"),
        ]
    )
    files = read_files(body, ctype)
    assert [(f.filename, f.data) for f in files] == [
        ("b.jpg", b"\x00\r\n--b0und"),
        ("a.png", b""),
        ("file 3", b"x"),
    ]


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"", None, "no Content-Type"),
        (b"a=1", "application/x-www-form-urlencoded", "multipart/form-data"),
        (b"--x\r\n", "multipart/form-data", "without a boundary"),
        (
            _multipart([("photo", "a.png", b"1")])[0],
            "multipart/form-data; boundary=b0undary",
            "no part named 'file'",
        ),
        (b"no boundary here at all", "multipart/form-data; boundary=b0undary", "malformed"),
        (
            _multipart([("file", "a.png", b"1")])[0][:-14],
            "multipart/form-data; boundary=b0undary",
            "cut short",
        ),
    ],
    ids=["no-type", "urlencoded", "no-boundary", "no-file-part", "garbage", "cut-short"],
)
def test_read_files_refuses_what_it_cannot_read(body: bytes, ctype: str | None, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        read_files(body, ctype)


def test_read_files_caps_the_number_of_files() -> None:
    body, ctype = _multipart([("file", f"{i}.png", b"x") for i in range(4)])
    assert len(read_files(body, ctype, max_files=4)) == 4
    with pytest.raises(UploadError, match="more than 3 files"):
        read_files(body, ctype, max_files=3)


class _RecordingScorer:
    """Scores an image as its mean value; records each batch, slowly, from its thread."""

    def __init__(self, delay: float = 0.05) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, images) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(images))
        time.sleep(self.delay)
        return np.array([float(im.mean()) for im in images])


def _images(values: list[float]) -> list[torch.Tensor]:
    return [torch.full((3, 4, 4), v) for v in values]


def test_batcher_groups_concurrent_callers_and_returns_each_its_own() -> None:
    scorer = _RecordingScorer()

    async def go() -> list[np.ndarray]:
        batcher = ScoreBatcher(scorer, window_s=0.05, max_images=64)
        await batcher.start()
        try:
            calls = [batcher.score(_images([i / 100, i / 100 + 0.005])) for i in range(20)]
            return await asyncio.gather(*calls)
        finally:
            await batcher.stop()

    results = asyncio.run(go())
    for i, scores in enumerate(results):
        assert scores == pytest.approx([i / 100, i / 100 + 0.005])
    assert sum(scorer.batches) == 40
    assert max(scorer.batches) > 2  # callers shared batches
    assert len(scorer.threads) == 1 and threading.main_thread().name not in scorer.threads


def test_batcher_closes_a_batch_at_max_images_and_never_splits_a_request() -> None:
    scorer = _RecordingScorer(delay=0.0)

    async def go() -> None:
        batcher = ScoreBatcher(scorer, window_s=0.2, max_images=4)
        await batcher.start()
        try:
            await asyncio.gather(*(batcher.score(_images([0.1] * n)) for n in (3, 3, 6, 1)))
        finally:
            await batcher.stop()

    asyncio.run(go())
    assert sum(scorer.batches) == 13
    assert all(b <= 6 for b in scorer.batches)  # 6: one request, not split
    assert scorer.batches[0] == 6  # 3 + 3 reached 4: closed without waiting for the window


def test_batcher_hands_an_error_to_every_caller_of_the_batch_and_goes_on() -> None:
    calls = []

    def flaky(images):
        calls.append(len(images))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros(len(images))

    async def go():
        batcher = ScoreBatcher(flaky, window_s=0.05)
        await batcher.start()
        try:
            first = await asyncio.gather(
                *(batcher.score(_images([0.5])) for _ in range(3)), return_exceptions=True
            )
            second = await batcher.score(_images([0.5]))
        finally:
            await batcher.stop()
        return first, second

    first, second = asyncio.run(go())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert list(second) == [0.0]


def test_uploads_are_never_written_to_disk(tiny_model: Path, photos: dict[str, Path], monkeypatch) -> None:
    """A 2 MB upload (over Starlette's 1 MiB spooling threshold) is read and scored without any
    file opened for writing."""
    import reiqa
    from reiqa.service.app import create_app

    app = create_app(reiqa.load(tiny_model), max_upload_bytes=8 * 2**20)
    big = photos["photo0.png"].read_bytes() + b"\0" * (2 * 2**20)  # trailing bytes after IEND
    good = photos["photo1.jpg"].read_bytes()
    writes: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            writes.append(f"open({file!r}, {mode!r})")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(f"os.open({path!r})")
        return real_os_open(path, flags, *args, **kwargs)

    async def go() -> httpx.Response:
        batcher = app.app.state.batcher
        await batcher.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                with monkeypatch.context() as m:
                    m.setattr(builtins, "open", guarded_open)
                    m.setattr(os, "open", guarded_os_open)
                    m.setattr(tempfile, "_TemporaryFileWrapper", None)  # any temporary file fails loudly
                    return await client.post(
                        "/score", files=[("file", ("big.png", big)), ("file", ("good.jpg", good))]
                    )
        finally:
            await batcher.stop()

    response = asyncio.run(go())
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["big.png", "good.jpg"]
    assert all(r["score"] is not None for r in results), results
    assert writes == []


def test_bad_uploads_are_answered_without_the_encoders(tiny_model: Path, photos: dict[str, Path]) -> None:
    """Files that cannot be read get their errors at once, in their places; only the images go
    through the batcher, and a request of bad files never waits for it."""
    import reiqa
    from reiqa.service.app import create_app

    app = create_app(reiqa.load(tiny_model))
    good = photos["photo1.jpg"].read_bytes()

    async def go() -> tuple[httpx.Response, httpx.Response, int]:
        batcher = app.app.state.batcher
        await batcher.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                only_bad = await client.post(
                    "/score", files=[("file", ("a.jpg", b"junk")), ("file", ("b.png", b""))]
                )
                batches_after_bad = batcher.stats.batches
                mixed = await client.post(
                    "/score",
                    files=[
                        ("file", ("x.jpg", b"junk")),
                        ("file", ("good.jpg", good)),
                        ("file", ("y.png", b"")),
                    ],
                )
            return only_bad, mixed, batches_after_bad
        finally:
            await batcher.stop()

    only_bad, mixed, batches_after_bad = asyncio.run(go())
    assert only_bad.status_code == 200 and batches_after_bad == 0
    assert [r["filename"] for r in only_bad.json()["results"]] == ["a.jpg", "b.png"]
    assert all(
        r["score"] is None and r["error"].startswith(r["filename"]) for r in only_bad.json()["results"]
    )
    results = mixed.json()["results"]
    assert [r["filename"] for r in results] == ["x.jpg", "good.jpg", "y.png"]
    assert [r["score"] is None for r in results] == [True, False, True]
    assert app.app.state.batcher.stats.images == 1  # the one good image, not the failures
