"""The page with a model that has a diagnosis head, in a real browser: each photo shows its issue
and severity under the score, and the CSV has them (Chromium driven by Playwright, as in
test_page_browser.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.service.conftest import httpx, running_server
from tests.service.test_diagnose import head_model  # noqa: F401  (the fixture)
from tests.service.test_page_browser import CHROMIUM

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install chromium)"
)


def test_page_shows_issue_and_severity(head_model: Path, photos: dict[str, Path]) -> None:  # noqa: F811
    names = ["photo0.png", "notes.jpg", "photo2.png"]
    with running_server("--model", str(head_model), "--backend", "torch") as server:
        api = httpx.post(
            f"{server.url}/diagnose", files=[("file", (n, photos[n].read_bytes())) for n in names], timeout=60
        ).json()["results"]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(accept_downloads=True)
                page.goto(f"{server.url}/")
                page.wait_for_function("document.getElementById('model').textContent.includes('test model')")
                page.set_input_files("#files", [str(photos[n]) for n in names])
                page.wait_for_function(f"document.querySelectorAll('#gallery .card').length === {len(names)}")
                cards = page.eval_on_selector_all(
                    "#gallery .card",
                    "cards => cards.map(c => ({name: c.dataset.filename, issue: c.dataset.issue ?? null,"
                    " shown: c.querySelector('.issue')?.textContent ?? null}))",
                )
                with page.expect_download() as download_info:
                    page.click("#csv")
                csv_text = Path(download_info.value.path()).read_text()
            finally:
                browser.close()
    by_name = {r["filename"]: r for r in api}
    for card in cards:
        row = by_name[card["name"]]
        assert card["issue"] == row["issue"]
        if row["issue"] is None:
            assert card["shown"] is None
        else:
            assert card["shown"].endswith(f"severity {row['severity']:.2f}")
    rows = {r["filename"]: r for r in csv.DictReader(io.StringIO(csv_text))}
    assert rows["photo0.png"]["issue"] == by_name["photo0.png"]["issue"] and rows["notes.jpg"]["issue"] == ""
