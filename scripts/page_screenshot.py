"""A screenshot of the `reiqa serve` page sorting photos, for the README.

    .venv/bin/python scripts/page_screenshot.py OUT.png [--model default]

Uploads the four `samples/` photos and four copies degraded by reiqa's own distortions (lens blur,
white noise, JPEG, pixelate at level 3) through the page in headless Chromium (Playwright), waits
for the gallery and saves a screenshot. Needs Chromium (Debian: apt-get install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve import start_server  # noqa: E402

DEGRADE = {
    "kodim03.png": "lens_blur",
    "kodim05.png": "white_noise",
    "kodim15.png": "jpeg",
    "kodim23.png": "pixelate",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    chromium = (
        "/usr/lib/chromium/chromium"
        if Path("/usr/lib/chromium/chromium").exists()
        else shutil.which("chromium")
    )
    if chromium is None:
        raise SystemExit("no Chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        photos = []
        for name, kind in DEGRADE.items():
            source = ROOT / "samples" / name
            photos.append(source)
            copy = Path(tmp) / f"{source.stem}-{kind}.jpg"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "reiqa",
                    "distort",
                    str(source),
                    "--type",
                    kind,
                    "--level",
                    "3",
                    "-o",
                    str(copy),
                ],
                check=True,
                capture_output=True,
            )
            photos.append(copy)
        server, url = start_server(args.model, [])
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1100, "height": 720})
                page.goto(f"{url}/")
                page.set_input_files("#files", [str(p) for p in photos])
                page.wait_for_function(
                    f"document.querySelectorAll('#gallery .card').length === {len(photos)}"
                )
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(15)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
