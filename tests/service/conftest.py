"""A real ``reiqa serve`` process for the service tests, and the photos they upload."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="reiqa serve needs the serve extra: pip install 'reiqa[serve]'")
pytest.importorskip("uvicorn", reason="reiqa serve needs the serve extra: pip install 'reiqa[serve]'")
httpx = pytest.importorskip("httpx", reason="the service tests talk HTTP with httpx")

from tests.conftest import save_tiny_bundle, textured_images  # noqa: E402

_LISTENING = re.compile(r"listening on (http://\S+) ")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    stderr: list[str] = field(default_factory=list)
    token: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[Server]:
    """``python -m reiqa serve --port 0 ARGS`` once /readyz says it is ready; stopped afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reiqa", "serve", "--port", "0", "--device", "cpu", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    found = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if _LISTENING.search(line):
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"reiqa serve did not start (exit {proc.poll()}):\n{''.join(lines)}")
        url = _LISTENING.search(next(x for x in lines if _LISTENING.search(x))).group(1)
        server = Server(url, proc, lines, (env or {}).get("REIQA_TEST_TOKEN"))
        while True:  # the socket is bound before the model is loaded
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"reiqa serve never became ready:\n{''.join(lines)}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four good photos of three sizes (PNG and JPEG) and two broken files."""
    from reiqa.io import save_image

    folder = tmp_path_factory.mktemp("photos")
    images = textured_images(4, 96, 128, seed=3)
    out = {}
    for i, image in enumerate(images):
        if i == 3:
            image = image[:, :80, :64]
        name = f"photo{i}.{'jpg' if i % 2 else 'png'}"
        out[name] = save_image(image, folder / name)
    (folder / "notes.jpg").write_text("not an image")
    out["notes.jpg"] = folder / "notes.jpg"
    truncated = out["photo1.jpg"].read_bytes()
    (folder / "cut.jpg").write_bytes(truncated[: len(truncated) // 3])
    out["cut.jpg"] = folder / "cut.jpg"
    return out
