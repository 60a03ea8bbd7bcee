"""How a model's score moves when a photo is distorted: the sample images, pristine and with
each of a few synthetic distortions at a given level.

    .venv/bin/python benchmarks/sensitivity.py [--model default] [--level 4] [IMAGES...]

A quality model should score every distorted version below the pristine one. Prints the table
(score, and the change from pristine) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reiqa import distortions  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

TYPES = (
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "resize_bicubic",
    "jpeg",
    "white_noise",
    "impulse_noise",
    "color_noise",
    "darken",
    "brighten",
    "hsv_saturation",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", type=Path, default=[ROOT / "samples"])
    ap.add_argument("--model", default="default")
    ap.add_argument("--level", type=int, default=4, help="distortion level 0..4")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sensitivity.json")
    args = ap.parse_args()
    tune_allocator()
    model = load(None if args.model == "default" else args.model)
    rows = {}
    for path in find_images(args.images):
        x = load_image(path).unsqueeze(0)
        g = torch.Generator().manual_seed(0)
        versions = [x] + [distortions.apply(x, t, args.level, generator=g) for t in TYPES]
        scores = model.score(torch.cat(versions))
        rows[path.name] = {"pristine": float(scores[0])} | {
            t: float(s) for t, s in zip(TYPES, scores[1:], strict=True)
        }
    print(f"model {model.name!r}, level {args.level}; score (change from pristine)")
    print(f"{'distortion':>16} " + " ".join(f"{name:>15}" for name in rows))
    for t in ("pristine", *TYPES):
        cells = []
        for r in rows.values():
            cells.append(f"{r[t]:6.1f}" + ("" if t == "pristine" else f" ({r[t] - r['pristine']:+6.1f})"))
        print(f"{t:>16} " + " ".join(f"{c:>15}" for c in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": model.name, "level": args.level, "scores": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
