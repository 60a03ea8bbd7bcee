"""Distortion engine speed: ours (batched torch) against the official per-image PIL/numpy/scipy
rendering, timed in the same run on the same images.

    .venv/bin/python benchmarks/distortions.py --data DATA [--threads 1] [--device cuda]

DATA is a folder holding ``kodak24/`` (the 24 Kodak PNGs).

Prints a table and writes JSON (default benchmarks/results/distortions.json). The official
baseline is tests/distortions/reference.py, which reproduces the official functions pixel for
pixel (checked against the official code); it needs the dev extras (scipy, scikit-image) and
always runs on the CPU.

Inputs: 8 Kodak images at 500x500, and 4 others resized to 1024x768 (w x h).
Per type: images per second with the five levels spread over the batch.
Training item: 1 pristine + 11 distorted versions, 2 scales, 160 px crop pairs, i.e. the
(24, 6, 160, 160) stack of reiqa.views.QualityViews with the paper's settings; the official
item is its __getitem__'s work: 11 distinct distortions of the whole image, plus the resize.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.distortions import reference  # noqa: E402
from tests.distortions.test_reference import reference_params  # noqa: E402

from reiqa import distortions  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402
from reiqa.views import QualityViewConfig, QualityViews  # noqa: E402


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
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
    if len(kodak) < 12:
        raise SystemExit(f"{data / 'kodak24'}: expected the 24 Kodak PNGs")
    small = torch.stack([load_image(p) for p in kodak[:8]])
    large = torch.stack([load_image(p) for p in kodak[8:12]])
    large = F.interpolate(large, size=(768, 1024), mode="bicubic", antialias=True).clamp(0, 1)
    return {"500x500": small, "1024x768": large}


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def official_item(image: np.ndarray, rng: np.random.Generator, n_aug: int = 11) -> None:
    """The official __getitem__'s work on one image."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0) / 255
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    for t in (rng.permutation(26)[:n_aug] + 1).tolist():
        level = int(rng.integers(5))
        params = distortions.sample_params(x, t, level, generator=g)[0]
        reference.render(t, image, level, **reference_params(t, level, params))
    F.interpolate(x.expand(n_aug + 1, -1, -1, -1), scale_factor=0.5, mode="bicubic", align_corners=True)


def per_type(spec, batch: torch.Tensor, args, sync) -> dict[str, float]:
    levels = torch.arange(len(batch)) % 5
    gen = torch.Generator(batch.device).manual_seed(0)
    t_ours = timed(lambda: distortions.apply(batch, spec.id, levels, generator=gen), args.repeats, sync)
    result = {"ours_images_per_s": len(batch) / t_ours, "official_images_per_s": float("nan")}
    if not args.skip_official:
        cpu = batch.cpu()
        params = distortions.sample_params(cpu, spec.id, levels, generator=torch.Generator().manual_seed(0))
        images = [to_uint8(im) for im in cpu]
        kwargs = [reference_params(spec.id, int(levels[i]), params[i]) for i in range(len(images))]

        def run_official() -> None:
            for i, im in enumerate(images):
                reference.render(spec.id, im, int(levels[i]), **kwargs[i])

        result["official_images_per_s"] = len(images) / timed(run_official, 1, lambda: None)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (kodak24 inside)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 = one core, as an official worker)"
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--items", type=int, default=24, help="training items timed per source size (ours)")
    ap.add_argument("--skip-official", action="store_true", help="do not time the official baseline")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distortions.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tuned = tune_allocator()  # as the training command does
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sets = {k: v.to(device) for k, v in load_sets(args.data).items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    results: dict = {
        "device": name,
        "threads": args.threads,
        "torch": torch.__version__,
        "allocator_tuned": tuned,
        "per_type": [],
        "item": [],
    }
    print(f"device={name} threads={args.threads} torch={torch.__version__} allocator_tuned={tuned}")
    print("images per second (levels L0..L4 spread over the batch); x = ours / official")
    print(f"{'id':>2} {'type':<21}" + "".join(f" {k + ' ours':>14} {'official':>9} {'x':>6}" for k in sets))
    for spec in distortions.CATALOG.values():
        row = {"id": spec.id, "name": spec.name}
        line = f"{spec.id:>2} {spec.name:<21}"
        for key, batch in sets.items():
            row[key] = r = per_type(spec, batch, args, sync)
            ours, official = r["ours_images_per_s"], r["official_images_per_s"]
            line += f" {ours:14.1f} {official:9.1f} {ours / official:6.1f}"
        results["per_type"].append(row)
        print(line, flush=True)

    print("\ntraining item (24, 6, 160, 160): mean time per item")
    views = QualityViews(QualityViewConfig())
    rng = np.random.default_rng(0)
    for key, batch in sets.items():
        gen = torch.Generator(device).manual_seed(0)
        views(batch[:1], generator=gen)  # warm-up
        sync()
        calls = max(1, args.items // len(batch))
        start = time.perf_counter()
        for _ in range(calls):
            views(batch, generator=gen)
        sync()
        t_ours = (time.perf_counter() - start) / (calls * len(batch))
        t_official = float("nan")
        if not args.skip_official:
            images = [to_uint8(im) for im in batch.cpu()]
            start = time.perf_counter()
            for im in images:
                official_item(im, rng)
            t_official = (time.perf_counter() - start) / len(images)
        results["item"].append(
            {
                "source": key,
                "ours_s_per_item": t_ours,
                "official_s_per_item": t_official,
                "items_ours": calls * len(batch),
                "items_official": 0 if args.skip_official else len(batch),
            }
        )
        print(
            f"  {key:>9}: ours {t_ours * 1000:7.1f} ms ({1 / t_ours:6.1f} items/s,"
            f" {calls * len(batch)} items)   official {t_official * 1000:7.1f} ms"
            f"   official/ours {t_official / t_ours:5.1f}x",
            flush=True,
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
