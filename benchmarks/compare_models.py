"""Two model folders side by side, each scored exactly as shipped (no refit): BIQ2021 Test overall
and per subset, SRCC on the CLIVE images (in-sample for a regressor fitted on CLIVE), the share of
degraded copies of the sample photos scored below their pristine photo, and the sample scores.

    .venv/bin/python benchmarks/compare_models.py --before OLD_DIR --after NEW_DIR \\
        --data DATA --biq2021 BIQ [--out FILE]

``--before``/``--after``: model folders, or 'default'. Features are cached under the output's
folder. For a fair comparison of recipes, with refits on each split, use ``regressor.py``;
this one answers "what changes for a user who upgrades".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.regressor import sensitivity  # noqa: E402

from reiqa import datasets  # noqa: E402
from reiqa.evaluate import align, metrics  # noqa: E402
from reiqa.features import extract  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def measure(folder: str, data: Path, biq_root: Path, cache: Path) -> dict:
    model = load(None if folder == "default" else folder)
    clive = datasets.load("clive", data / "clive")
    biq = datasets.load("biq2021", biq_root)
    test = biq.subset(biq.split_indices("test"))
    table = extract(model.features, test.paths, max_side=model.max_side, cache=cache, progress=True)
    x, y, _ = align(table, test)
    predicted = model.regressor.predict(x)
    subset = np.array(test.distortion)
    clive_table = extract(model.features, clive.paths, max_side=model.max_side, cache=cache, progress=True)
    xc, yc, _ = align(clive_table, clive)
    samples = find_images([ROOT / "samples"])
    return {
        "model": model.name,
        "model_id": model.model_id,
        "biq_test_srcc": metrics(predicted, y)["srcc"],
        **{k: metrics(predicted[subset == k], y[subset == k])["srcc"] for k in ("ss01", "ss02", "ss03")},
        "clive_srcc_as_shipped": metrics(model.regressor.predict(xc), yc)["srcc"],
        "sensitivity": sensitivity(model.features, model.regressor, model.max_side),
        "samples": {p.stem: float(s) for p, s in zip(samples, model.score(samples), strict=True)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--biq2021", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compare-models.json")
    args = ap.parse_args()
    tune_allocator()
    cache = args.out.parent / "cache"
    results = {
        side: measure(getattr(args, side), args.data, args.biq2021, cache) for side in ("before", "after")
    }
    print("| | BIQ2021 Test | ss01 | ss02 | ss03 | CLIVE (as shipped) | copies below pristine |")
    print("|---|---|---|---|---|---|---|")
    for side, r in results.items():
        print(
            f"| {side} | {r['biq_test_srcc']:.3f} | {r['ss01']:.3f} | {r['ss02']:.3f} | {r['ss03']:.3f} "
            f"| {r['clive_srcc_as_shipped']:.3f} | {r['sensitivity']['share_below']:.0%} |"
        )
    for side, r in results.items():
        print(side, ", ".join(f"{k} {v:.3f}" for k, v in r["samples"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
