"""The page in a real browser: headless Chromium (Debian's package) driven by Playwright uploads
photos to a running ``reiqa serve`` and reads the gallery back."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest

from tests.service.conftest import httpx, running_server

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)


def _chromium() -> str | None:
    if os.environ.get("REIQA_CHROMIUM"):
        return os.environ["REIQA_CHROMIUM"]
    if os.path.exists("/usr/lib/chromium/chromium"):  # Debian's binary, behind its /usr/bin wrapper
        return "/usr/lib/chromium/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
)


def test_page_sorts_uploaded_photos_by_score_and_exports_csv(
    tiny_model: Path, photos: dict[str, Path], tmp_path: Path
) -> None:
    names = ["photo0.png", "photo1.jpg", "notes.jpg", "photo2.png", "photo3.jpg"]
    with running_server("--model", str(tiny_model)) as server:
        api = httpx.post(
            f"{server.url}/score", files=[("file", (n, photos[n].read_bytes())) for n in names], timeout=60
        ).json()["results"]
        expected = sorted((r for r in api if r["score"] is not None), key=lambda r: -r["score"])
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
                outside: list[str] = []
                page.on(
                    "request",
                    lambda r: (
                        outside.append(r.url)
                        if not r.url.startswith((server.url, "blob:", "data:"))
                        else None
                    ),
                )
                page.goto(f"{server.url}/")
                page.wait_for_function("document.getElementById('model').textContent.includes('test model')")
                page.set_input_files("#files", [str(photos[n]) for n in names])
                page.wait_for_function(f"document.querySelectorAll('#gallery .card').length === {len(names)}")
                cards = page.eval_on_selector_all(
                    "#gallery .card",
                    "cards => cards.map(c => ({name: c.dataset.filename, score: c.dataset.score ?? null,"
                    " shown: c.querySelector('.score').textContent}))",
                )
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
                with page.expect_download() as download_info:
                    page.click("#csv")
                download_path = download_info.value.path()
                assert download_path is not None
                csv_text = Path(download_path).read_text()
            finally:
                browser.close()
    assert outside == []  # the page needs nothing from outside the service
    scored = [c for c in cards if c["score"] is not None]
    assert [c["name"] for c in scored] == [r["filename"] for r in expected]  # best first
    for card, row in zip(scored, expected, strict=True):
        assert float(card["score"]) == pytest.approx(row["score"], abs=1e-9)
        assert card["shown"] == f"{row['score']:.2f}"
    assert [c["name"] for c in cards[len(scored) :]] == ["notes.jpg"]
    assert cards[-1]["shown"] == "not scored"
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["filename"] for r in rows] == [*(r["filename"] for r in expected), "notes.jpg"]
    assert float(rows[0]["score"]) == pytest.approx(expected[0]["score"])
    assert rows[-1]["score"] == "" and "not an image" in rows[-1]["error"]
    assert (tmp_path / "page.png").stat().st_size > 10_000
