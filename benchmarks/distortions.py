"""Distortion engine speed: ours (batched torch) against the official per-image PIL/numpy/scipy
rendering, timed in the same run on the same images.

    .venv/bin/python benchmarks/distortions.py --data ../shared/data [--threads 1] [--device cuda]

Prints a table and writes JSON (default benchmarks/results/distortions.json). The official
baseline is tests/distortions/reference.py, which reproduces the official functions pixel for
pixel; it needs the dev extras (scipy, scikit-image).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reiqa import distortions  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.views import QualityViewConfig, QualityViews  # noqa: E402
from tests.distortions import reference  # noqa: E402
from tests.distortions.test_reference import reference_params  # noqa: E402


def timed(fn, repeats: int, sync) -> float:
    """Median wall time of fn() over repeats, after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_sets(data: Path) -> dict[str, torch.Tensor]:
    kodak = sorted((data / "kodak24").glob("*.png"))
    small = torch.stack([load_image(p) for p in kodak[:8]])  # 8 x 500x500
    large = torch.stack([load_image(p) for p in kodak[8:12]])  # upsampled to 4 x 1024x768 (w x h)
    large = F.interpolate(large, size=(768, 1024), mode="bicubic", antialias=True).clamp(0, 1)
    return {"500x500": small, "1024x768": large}


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def official_item(image: np.ndarray, rng: np.random.Generator, n_aug: int = 11) -> None:
    """The official __getitem__'s work: 11 distinct distortions of the whole image at random
    levels (the crops and the half-scale resize that follow cost little beside them)."""
    types = rng.permutation(26)[:n_aug] + 1
    x = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0) / 255
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    for t in types:
        level = int(rng.integers(5))
        params = distortions.sample_params(x, int(t), level, generator=g)[0]
        reference.render(int(t), image, level, **reference_params(int(t), level, params))
    torch.nn.functional.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (kodak24 inside)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = one core, like the official worker)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-official", action="store_true", help="do not time the official baseline")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distortions.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sets = {k: v.to(device) for k, v in load_sets(args.data).items()}
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "per_type": [],
        "item": [],
    }

    print(f"device={results['device']} threads={args.threads} torch={torch.__version__}")
    header = f"{'id':>2} {'type':<21}" + "".join(f" {k + ' ours':>14} {'official':>9} {'x':>6}" for k in sets)
    print("images per second, levels L0..L4 spread over the batch")
    print(header)
    for spec in distortions.CATALOG.values():
        row = {"id": spec.id, "name": spec.name}
        line = f"{spec.id:>2} {spec.name:<21}"
        for key, batch in sets.items():
            levels = torch.arange(len(batch)) % 5
            g = torch.Generator(device).manual_seed(0)
            t_ours = timed(lambda b=batch, lv=levels, g=g: distortions.apply(b, spec.id, lv, generator=g),
                           args.repeats, sync)
            ours = len(batch) / t_ours
            official = float("nan")
            if not args.skip_official:
                cpu = batch.cpu()
                params = distortions.sample_params(cpu, spec.id, levels, generator=torch.Generator().manual_seed(0))
                imgs = [to_uint8(im) for im in cpu]
                kw = [reference_params(spec.id, int(levels[i]), params[i]) for i in range(len(imgs))]

                def run_official(imgs=imgs, kw=kw, levels=levels):
                    for i, im in enumerate(imgs):
                        reference.render(spec.id, im, int(levels[i]), **kw[i])

                official = len(imgs) / timed(run_official, 1, lambda: None)
            row[key] = {"ours_images_per_s": ours, "official_images_per_s": official}
            line += f" {ours:14.1f} {official:9.1f} {ours / official:6.1f}"
        results["per_type"].append(row)
        print(line, flush=True)

    print("\ntraining item: 1 pristine + 11 distorted versions, 2 scales, 160 px crop pairs (24, 6, 160, 160)")
    views = QualityViews(QualityViewConfig())
    rng = np.random.default_rng(0)
    for key, batch in sets.items():
        g = torch.Generator(device).manual_seed(0)
        t_ours = timed(lambda b=batch, g=g: views(b, generator=g), args.repeats, sync) / len(batch)
        t_official = float("nan")
        if not args.skip_official:
            imgs = [to_uint8(im) for im in batch.cpu()]
            t_official = timed(lambda imgs=imgs: [official_item(im, rng) for im in imgs], 1, lambda: None) / len(imgs)
        results["item"].append({"source": key, "ours_s_per_item": t_ours, "official_s_per_item": t_official,
                                "batch": len(batch)})
        print(f"  {key:>9}: ours {t_ours * 1000:8.1f} ms/item ({1 / t_ours:7.1f} items/s)   "
              f"official {t_official * 1000:8.1f} ms/item   ratio {t_official / t_ours:5.1f}x", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
