"""Scoring on a CUDA GPU with the torch engine: images/s in float32 and in float16 (autocast),
with more pixels per forward pass than the CPU's budget, and how far the GPU's scores are from the
CPU's on the same files.

    python benchmarks/gpu.py [--images 192] [--large 12] [--out benchmarks/results/gpu.json]

Writes JPEGs of 500x500 and of 4000x3000 pixels (12 MP) from seeded synthetic textures, scores
them with ``ReIQA.score_files`` (decoding in worker processes so that the GPU, not the decoder,
is measured) on the CPU once (the reference), then on the GPU with ``--backend torch`` (float32,
TensorFloat-32 off) and ``--backend torch-fp16`` (float16 autocast, 2^23 pixels per forward
pass); also the encoders alone on decoded, resized images. Prints a table and writes JSON.
Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import device_name  # noqa: E402

from reiqa.features import encode  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.io import save_image  # noqa: E402


def make_jpegs(folder: Path, width: int, height: int, n: int) -> list[Path]:
    """n seeded textures (smooth colour fields with sharp detail), JPEG quality 90."""
    paths = []
    for i in range(n):
        g = torch.Generator().manual_seed(1000 * width + i)
        base = F.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(height, width), mode="bicubic")
        detail = F.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=g), size=(height, width))
        image = (0.8 * base + 0.2 * detail).clamp(0, 1)
        path = folder / f"{width}x{height}-{i:03d}.jpg"
        save_image(image[0], path, quality=90)
        paths.append(path)
    return paths


def timed_scores(
    model, paths, *, workers: int, batch_size: int, repeats: int = 2
) -> tuple[np.ndarray, float]:
    """Scores and the best images/s of ``repeats`` whole runs (after a warm-up batch)."""
    list(model.score_files(paths[:batch_size], batch_size=batch_size))
    best, scores = 0.0, None
    for _ in range(repeats):
        _sync(model)
        start = time.perf_counter()
        records = list(model.score_files(paths, batch_size=batch_size, workers=workers))
        _sync(model)
        best = max(best, len(paths) / (time.perf_counter() - start))
        scores = np.array([r.score for r in records], dtype=np.float64)
    return scores, best


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def encoder_rate(model, images: torch.Tensor, repeats: int = 3) -> float:
    """Images/s of the encoders alone (both, full and half scale) on decoded, resized images."""
    encode(model.features, images[:2])
    best = 0.0
    for _ in range(repeats):
        _sync(model)
        start = time.perf_counter()
        encode(model.features, images)
        _sync(model)
        best = max(best, len(images) / (time.perf_counter() - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=192, help="500x500 photos")
    ap.add_argument("--large", type=int, default=48, help="12 MP photos")
    ap.add_argument("--workers", type=int, default=12, help="decoding processes")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU")
    models = {
        ("cpu", "fp32"): load(),
        ("cuda", "fp32"): load(device="cuda"),
        ("cuda", "fp16"): load(device="cuda", backend="torch-fp16"),
    }
    results = {"device": device_name(torch.device("cuda")), "torch": torch.__version__}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "500x500": make_jpegs(Path(tmp), 500, 500, args.images),
            "12MP": make_jpegs(Path(tmp), 4000, 3000, args.large),
        }
        for name, paths in sets.items():
            reference = None
            prepared = torch.stack([models["cpu", "fp32"].prepare(p) for p in paths[:48]])
            for (device, precision), model in models.items():
                scores, rate = timed_scores(
                    model, paths, workers=args.workers, batch_size=8, repeats=1 if device == "cpu" else 2
                )
                if reference is None:
                    reference = scores
                rows.append(
                    {
                        "set": name,
                        "device": device,
                        "precision": precision,
                        "pixels_per_forward": model.features.engine.pixels_per_forward,
                        "images_per_s": rate,
                        "encoders_images_per_s": encoder_rate(model, prepared.to(model.device)),
                        "encoded_size": list(prepared.shape[-2:]),
                        "max_abs_diff_vs_cpu": float(np.max(np.abs(scores - reference))),
                    }
                )
                print(rows[-1], flush=True)
    results["runs"] = rows
    print("| photos | device | precision | images/s end to end | images/s encoders | max abs diff vs CPU |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['device']} | {r['precision']} | {r['images_per_s']:.1f} | "
            f"{r['encoders_images_per_s']:.1f} | {r['max_abs_diff_vs_cpu']:.5f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
