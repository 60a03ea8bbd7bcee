"""Does a model score a photo above its degraded copies? Each model scored as shipped.

    .venv/bin/python benchmarks/degraded_copies.py --model default [--model DIR ...] \\
        --images DATA/kodak24 [--levels 3 4 5] [--out FILE]

Every photo (pristine: Kodak's 24 are the usual references) is degraded by each type of
``reiqa.ranking.DEGRADING`` (the catalogue's monotone degrading types) plus ``non_eccentricity``
and ``denoise`` (degrading but not monotone in the catalogue: 19 types), at each of ``--levels``
(1-5, the catalogue's levels; default the strong ones, 3-5), seeded. A copy counts as ordered
right when the model scores it below its pristine photo. Prints the share per model, the types
where any copy is rewarded, and writes JSON (per type and level).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reiqa import distortions  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.features import encode  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.ranking import DEGRADING  # noqa: E402
from reiqa.resize import cap_size  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

TYPES = (*DEGRADING, "non_eccentricity", "denoise")


def measure(folder: str, images: list[Path], levels: list[int]) -> dict:
    model = load(None if folder == "default" else folder)
    rows = []  # (type, level, pristine score, copy score)
    for i, path in enumerate(images):
        x = cap_size(load_image(path), max_side=model.max_side).unsqueeze(0)
        g = torch.Generator().manual_seed(i)
        batch = x.expand(len(levels), -1, -1, -1)
        copies = [distortions.apply(batch, t, torch.tensor(levels) - 1, generator=g) for t in TYPES]
        scores = model.regressor.predict(encode(model.features, torch.cat([x, *copies])))
        rows += [
            (t, lv, float(scores[0]), float(scores[1 + k * len(levels) + j]))
            for k, t in enumerate(TYPES)
            for j, lv in enumerate(levels)
        ]
    below = {t: [r[3] < r[2] for r in rows if r[0] == t] for t in TYPES}
    by_level = {lv: float(np.mean([r[3] < r[2] for r in rows if r[1] == lv])) for lv in levels}
    return {
        "model": model.name,
        "model_id": model.model_id,
        "share_below": float(np.mean([r[3] < r[2] for r in rows])),
        "copies": len(rows),
        "below_by_type": {t: float(np.mean(v)) for t, v in below.items()},
        "below_by_level": by_level,
        "mean_drop_by_type": {t: float(np.mean([r[2] - r[3] for r in rows if r[0] == t])) for t in TYPES},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="a model folder, or 'default'")
    ap.add_argument("--images", type=Path, required=True, help="pristine photos (a folder)")
    ap.add_argument("--levels", type=int, nargs="+", default=[3, 4, 5])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "degraded-copies.json")
    args = ap.parse_args()
    tune_allocator()
    images = find_images([args.images])
    results = {m: measure(m, images, args.levels) for m in args.model}
    print(f"{len(images)} photos x {len(TYPES)} types x levels {args.levels}")
    for folder, r in results.items():
        rewarded = {t: f"{1 - v:.0%}" for t, v in r["below_by_type"].items() if v < 1}
        print(
            f"{folder}: {r['share_below']:.1%} of {r['copies']} copies below pristine; rewarded: {rewarded}"
        )
    report = {"types": list(TYPES), "levels": args.levels, "results": results}
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")  # the folder is made if missing
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
