"""Scoring speed, end to end from JPEG files: decode, features (both encoders, full + half
scale), regressor.

    .venv/bin/python benchmarks/score.py [--data DATA] [--model default] [--device cpu]

Writes JPEG files of 500x500 and 1024x768 pixels (from the Kodak images in DATA/kodak24 when
--data is given, else from synthetic textures), scores them with ``ReIQA.score_files`` as
``reiqa score`` does, and reports images/s, the peak memory, and the share of the machine's
measured ceiling: the encoders' FLOPs per image (counted by torch's FlopCounterMode) times
images/s, divided by the throughput of a large 3x3 convolution and of a large matmul timed in
the same run. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import conv_gflops, device_name, matmul_gflops  # noqa: E402

from reiqa.bundle import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image, save_image  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

SIZES = ((500, 500), (1024, 768))  # (width, height)


def make_jpegs(folder: Path, size: tuple[int, int], n: int, sources: list[Path]) -> list[Path]:
    """n JPEGs (quality 90) of the given size, resized from the sources in turn."""
    width, height = size
    paths = []
    for i in range(n):
        if sources:
            image = load_image(sources[i % len(sources)]).unsqueeze(0)
        else:
            g = torch.Generator().manual_seed(i)
            image = F.interpolate(torch.rand(1, 3, 24, 32, generator=g), size=(96, 128), mode="bicubic")
        image = F.interpolate(image, size=(height, width), mode="bicubic", antialias=True).clamp(0, 1)
        path = folder / f"{width}x{height}-{i:03d}.jpg"
        save_image(image[0], path, quality=90)
        paths.append(path)
    return paths


def gflop_per_image(model, size: tuple[int, int], device: torch.device) -> float:
    width, height = size
    x = torch.rand(1, 3, height, width, device=device)
    with FlopCounterMode(display=False) as counter:
        model.features(x)
    return counter.get_total_flops() / 1e9


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="the shared data folder (kodak24 inside)")
    ap.add_argument("--model", default="default", help="'default' or a model folder")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=32, help="images per size")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="decoding processes")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "score.json")
    args = ap.parse_args()

    tune_allocator()
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    conv_peak, matmul_peak = conv_gflops(device, threads), matmul_gflops(device, threads)
    model = load(None if args.model == "default" else args.model).to(device)
    sources = find_images([args.data / "kodak24"]) if args.data else []
    results = {
        "device": device_name(device),
        "threads": threads,
        "torch": torch.__version__,
        "model": model.name,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "conv_gflops": conv_peak,
        "matmul_gflops": matmul_peak,
        "sizes": [],
    }
    print(
        f"device={results['device']} threads={threads} model={model.name!r} "
        f"conv {conv_peak:.0f} GFLOP/s, matmul {matmul_peak:.0f} GFLOP/s (measured in this run)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            paths = make_jpegs(Path(tmp), size, args.images, sources)
            warm = list(model.score_files(paths[: args.batch_size], batch_size=args.batch_size))
            assert all(r.score is not None for r in warm), [r.error for r in warm if r.error]
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            records = list(model.score_files(paths, batch_size=args.batch_size, workers=args.workers))
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            assert all(r.score is not None for r in records)
            per_s = len(paths) / seconds
            gflop = gflop_per_image(model, size, device)
            row = {
                "size": f"{size[0]}x{size[1]}",
                "images": len(paths),
                "images_per_s": per_s,
                "ms_per_image": 1000 / per_s,
                "gflop_per_image": gflop,
                "share_of_conv_peak": gflop * per_s / conv_peak,
                "share_of_matmul_peak": gflop * per_s / matmul_peak,
                "peak_memory_mb": peak_memory_mb(device),
            }
            results["sizes"].append(row)
    columns = ("size", "img/s", "ms/img", "GFLOP/img", "of conv", "of matmul", "peak MB")
    widths = (9, 7, 8, 9, 8, 9, 8)
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for r in results["sizes"]:
        print(
            f"{r['size']:>9} {r['images_per_s']:7.2f} {r['ms_per_image']:8.0f} {r['gflop_per_image']:9.1f} "
            f"{r['share_of_conv_peak']:8.0%} {r['share_of_matmul_peak']:9.0%} {r['peak_memory_mb']:8.0f}"
        )
    print("peak memory: CUDA max allocated, or the process's peak RSS (cumulative over the sizes) on CPU")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
