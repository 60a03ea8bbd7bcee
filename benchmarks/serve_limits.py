"""Memory and waiting of ``reiqa serve`` under the uploads that decode to far more than they
weigh, against the same scenarios on another checkout (``--baseline SRC``: its ``src`` folder,
e.g. a ``git worktree`` of an older commit), in the same run.

    .venv/bin/python benchmarks/serve_limits.py [--model default] [--baseline /tmp/old/src]

Scenarios, each on a fresh server process (default options):

- ``big``: 4 clients at once, each sending two 8000x6000 JPEGs (within every size limit), and
  0.5 s later a fifth client sending one 500x500 photo;
- ``flat``: one request of 100 flat 1024x1024 PNGs (about 5 KB each, a 1 GB decoded request).

For each: the HTTP statuses, the small photo's wait, the wall time, and the server's peak RSS
(VmHWM) above its RSS once ready. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve import rss_mib, start_server  # noqa: E402


def _jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.BILINEAR).save(out, "JPEG", quality=90)
    return out.getvalue()


def _flat_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1024, 1024), (100, 120, 140)).save(out, "PNG")
    return out.getvalue()


def _post(url: str, files: list[tuple[str, bytes]]) -> tuple[int, float]:
    start = time.perf_counter()
    try:
        response = httpx.post(f"{url}/score", files=[("file", f) for f in files], timeout=300)
        status = response.status_code
    except httpx.HTTPError:
        status = -1
    return status, time.perf_counter() - start


def scenario_big(url: str) -> dict:
    big = [(f"big{i}.jpg", _jpeg(8000, 6000, seed=i)) for i in range(2)]
    small = [("small.jpg", _jpeg(500, 500, seed=9))]
    start = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        heavy = [pool.submit(_post, url, big) for _ in range(4)]
        time.sleep(0.5)
        light = pool.submit(_post, url, small)
        statuses = [f.result()[0] for f in heavy]
        small_status, small_wait = light.result()
    return {
        "statuses": statuses,
        "small_status": small_status,
        "small_wait_s": small_wait,
        "wall_s": time.perf_counter() - start,
    }


def scenario_flat(url: str) -> dict:
    flat = _flat_png()
    start = time.perf_counter()
    status, _ = _post(url, [(f"flat{i}.png", flat) for i in range(100)])
    return {"statuses": [status], "request_bytes": 100 * len(flat), "wall_s": time.perf_counter() - start}


def run(model: str, src: Path) -> dict:
    out = {}
    for name, scenario in (("big", scenario_big), ("flat", scenario_flat)):
        proc, url = start_server(model, [], env={"PYTHONPATH": str(src)})
        try:
            ready_rss = rss_mib(proc.pid, "VmRSS")
            result = scenario(url)
            result["ready_rss_mib"] = ready_rss
            result["peak_rss_mib"] = rss_mib(proc.pid)
            result["peak_above_ready_mib"] = result["peak_rss_mib"] - ready_rss
            result["alive_after"] = httpx.get(f"{url}/health", timeout=10).status_code == 200
        finally:
            proc.terminate()
            proc.wait(60)
        out[name] = result
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--baseline", type=Path, help="the src folder of another checkout to compare with")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_limits.json")
    args = ap.parse_args()
    runs = {"this": run(args.model, ROOT / "src")}
    if args.baseline:
        runs["baseline"] = run(args.model, args.baseline)
    print("| checkout | scenario | statuses | small photo | wall s | peak RSS above ready MiB |")
    print("|---|---|---|---|---|---|")
    for checkout, scenarios in runs.items():
        for name, r in scenarios.items():
            small = f"{r['small_status']} in {r['small_wait_s']:.1f} s" if "small_status" in r else "-"
            print(
                f"| {checkout} | {name} | {r['statuses']} | {small} | {r['wall_s']:.1f} "
                f"| {r['peak_above_ready_mib']:.0f} |"
            )
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "model": args.model,
        **runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
