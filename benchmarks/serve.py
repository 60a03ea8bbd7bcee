"""Load test of ``reiqa serve`` on loopback, against in-process scoring in the same run.

    .venv/bin/python benchmarks/serve.py [--data DATA] [--model default] [--clients 1 4 16]
        [--requests 64] [--files-per-request 1]

Writes 500x500 JPEGs (from DATA/kodak24 when given, else synthetic textures), then:

1. in-process baseline: ``ReIQA.score_files`` on the same files with the same engine as the
   server (``--backend``, default auto as ``reiqa serve`` picks it), one at a time and in
   batches of 8 (what ``reiqa score`` does), images/s;
2. starts ``python -m reiqa serve`` (a real process, default options) and, for each number of
   concurrent clients, sends a fixed number of ``POST /score`` requests (each client a thread with
   its own connection), recording each request's latency, errors and the scores;
3. the server's peak RSS (VmHWM from /proc) after the run, and what its ``GET /metrics`` says
   of each level (requests by status, images scored and failed, encoder batches and their mean
   size, the most pixels in flight), parsed with prometheus-client's parser.

Throughput is images/s over the whole wall time of a level; the ratio is against the in-process
batched figure measured just before. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.score import make_jpegs  # noqa: E402

from reiqa.engines import choose  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def start_server(
    model: str, extra: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """``python -m reiqa serve --port 0`` on ``model`` (with ``env`` added to the environment),
    once /readyz says it is ready (a server too old for /readyz: once /health answers, and a
    second for its first batch): (process, url)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reiqa", "serve", "--port", "0", "--device", "cpu", "--model", model, *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    url = None
    for line in proc.stderr:
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
            break
    if url is None:
        raise SystemExit(f"reiqa serve did not start (exit {proc.wait()})")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    while True:
        try:
            ready = httpx.get(f"{url}/readyz", timeout=5).status_code
            if ready == 200:
                return proc, url
            if ready == 404 and httpx.get(f"{url}/health", timeout=5).status_code == 200:
                time.sleep(1.0)
                return proc, url
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(f"reiqa serve exited ({proc.returncode}) before it answered") from None
        time.sleep(0.1)


def scrape(url: str) -> dict[str, float]:
    """The server's metrics: sample name with its labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def metrics_of_level(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the server counted during one level (counters as differences, gauges as they are)."""
    grown = {k: v - before.get(k, 0.0) for k, v in after.items() if k.endswith("_total") or "_total{" in k}
    batches = after["reiqa_batch_size_images_count"] - before["reiqa_batch_size_images_count"]
    images = after["reiqa_batch_size_images_sum"] - before["reiqa_batch_size_images_sum"]
    return {
        **{k: v for k, v in grown.items() if v and "created" not in k},
        "encoder_batches": batches,
        "mean_batch_images": images / batches if batches else 0.0,
        "pixels_in_flight_peak": after["reiqa_pixels_in_flight_peak"],
    }


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of process ``pid`` from /proc, in MiB: VmHWM (its peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_level(
    url: str, files: list[tuple[str, bytes]], clients: int, requests: int, per_request: int
) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    scores: dict[str, float] = {}
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=120) as session:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                batch = [files[(i * per_request + k) % len(files)] for k in range(per_request)]
                start = time.perf_counter()
                try:
                    response = session.post(f"{url}/score", files=[("file", f) for f in batch])
                    results = response.json()["results"] if response.status_code == 200 else None
                    failure = None if results is not None else f"HTTP {response.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    results, failure = None, f"{type(exc).__name__}: {exc}"
                took = time.perf_counter() - start
                with lock:
                    latencies.append(took)
                    if failure is not None:
                        errors.append(failure)
                        continue
                    for r in results:
                        if r["score"] is None:
                            errors.append(r["error"])
                        else:
                            scores[r["filename"]] = r["score"]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - start
    lat = sorted(latencies)
    return {
        "clients": clients,
        "requests": requests,
        "images": requests * per_request,
        "wall_s": wall,
        "images_per_s": requests * per_request / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "errors": len(errors),
        "error_examples": errors[:3],
        "scores": scores,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="the shared data folder (kodak24 inside)")
    ap.add_argument("--model", default="default", help="'default' or a model folder")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=64, help="requests per level")
    ap.add_argument("--files-per-request", type=int, default=1)
    ap.add_argument("--images", type=int, default=16, help="distinct 500x500 JPEGs")
    ap.add_argument("--backend", default="auto", help="the server's and the in-process baseline's engine")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    args = ap.parse_args()

    tune_allocator()
    sources = find_images([args.data / "kodak24"]) if args.data else []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), (500, 500), args.images, sources)
        files = [(p.name, p.read_bytes()) for p in paths]
        backend = choose(args.backend, device_type="cpu").name
        model = load(None if args.model == "default" else args.model).with_backend(backend)
        list(model.score_files(paths[:8], batch_size=8))  # warm-up
        in_process = {}
        for batch in (1, 8):
            n = max(args.requests * args.files_per_request, 32)
            todo = [paths[i % len(paths)] for i in range(n)]
            start = time.perf_counter()
            reference = {Path(r.path).name: r.score for r in model.score_files(todo, batch_size=batch)}
            in_process[batch] = n / (time.perf_counter() - start)
        rss_in_process = rss_mib(os.getpid())
        del model

        proc, url = start_server(args.model, ["--backend", backend])
        try:
            load_level(url, files[:4], 1, 4, 1)  # warm-up
            levels = []
            for c in args.clients:
                before = scrape(url)
                levels.append(load_level(url, files, c, args.requests, args.files_per_request))
                levels[-1]["server_metrics"] = metrics_of_level(before, scrape(url))
            server_rss = rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)

    base = in_process[8]
    rows = []
    for level in levels:
        scores = level.pop("scores")
        diffs = [abs(v - reference[n]) for n, v in scores.items() if n in reference]
        level["max_abs_score_diff_vs_in_process"] = max(diffs) if diffs else None
        level["ratio_vs_in_process_batch8"] = level["images_per_s"] / base
        rows.append(level)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "model": args.model,
        "backend": backend,
        "image_size": "500x500 JPEG q90",
        "files_per_request": args.files_per_request,
        "in_process_images_per_s": {"batch1": in_process[1], "batch8": base},
        "in_process_peak_rss_mib": rss_in_process,
        "server_peak_rss_mib": server_rss,
        "levels": rows,
    }
    print(f"backend {backend}; in process: {in_process[1]:.2f} img/s one by one, {base:.2f} in batches of 8")
    print("| clients | requests | img/s | vs in-process (batch 8) | p50 ms | p99 ms | errors | max |diff| |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio, diff = r["ratio_vs_in_process_batch8"], r["max_abs_score_diff_vs_in_process"]
        print(
            f"| {r['clients']} | {r['requests']} | {r['images_per_s']:.2f} | {ratio:.2f}x "
            f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} | {diff:.2g} |"
        )
    print(f"server peak RSS {server_rss:.0f} MiB")
    print("| clients | /score 200 | images scored | encoder batches | mean batch | peak pixels in flight |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        m = r["server_metrics"]
        print(
            f"| {r['clients']} | {m.get('reiqa_requests_total{method=POST,path=/score,status=200}', 0):.0f} "
            f"| {m.get('reiqa_images_total{outcome=scored}', 0):.0f} | {m['encoder_batches']:.0f} "
            f"| {m['mean_batch_images']:.2f} | {m['pixels_in_flight_peak'] / 1e6:.2f} M |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
