"""Which regressor recipe to ship: one database or two, with or without the ranking term.

    .venv/bin/python benchmarks/regressor.py --data DATA --biq2021 BIQ --pairs-from BSDS \\
        [--model default] [--pair-images 120] [--splits 10] [--out DIR]

DATA holds ``clive/``; BIQ is a clone of the BIQ2021 repository; BSDS is a folder of photos used
only to make ranking pairs (``reiqa.ranking.degradation_pairs``: each photo above its degraded
copies, 320 px centre crops; BSDS500's images were used here). Features come from the model's
encoders (cached under OUT/cache). Recipes:

- ``clive``: ridge on CLIVE's scores (today's default);
- ``clive+biq``: ridge on CLIVE and BIQ2021 Train together, each database's scores standardised
  (z-scores), so that neither scale dominates;
- ``... +pairs``: the same with the ranking term; its weight is chosen once by 5-fold CV over
  BIQ2021 Train rows and the pairs (``QualityRegressor.fit(..., pairs=...)``), never on test data.

Measured: CLIVE share (random 70/10/20 splits; the strength chosen on the split's val part; the
BIQ2021 rows, when used, join the train part), BIQ2021 Test (fitted on Train, plus all of CLIVE
for the two-database recipes) overall and per subset, and the sensitivity check: on the
``samples/`` photos, the share of copies degraded at level 4 (every type of
``reiqa.ranking.DEGRADING``) that score below their pristine photo. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import limit_train  # noqa: E402

from reiqa import datasets, distortions  # noqa: E402
from reiqa.evaluate import align, make_splits, metrics  # noqa: E402
from reiqa.features import encode, extract  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.ranking import DEGRADING, degradation_pairs_of_files  # noqa: E402
from reiqa.regress import QualityRegressor, ranked_ridge  # noqa: E402
from reiqa.resize import cap_size  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def zscore(y: np.ndarray) -> np.ndarray:
    return (y - y.mean()) / y.std()


def sensitivity(model, regressor: QualityRegressor, max_side: int | None) -> dict:
    """Share of level-4 copies (every degrading type) scored below their pristine sample."""
    below, total = 0, 0
    per_type = {t: 0 for t in DEGRADING}
    for path in find_images([ROOT / "samples"]):
        x = cap_size(load_image(path), max_side=max_side).unsqueeze(0)
        g = torch.Generator().manual_seed(0)
        copies = [distortions.apply(x, t, 4, generator=g) for t in DEGRADING]
        scores = regressor.predict(encode(model, torch.cat([x, *copies])))
        for t, s in zip(DEGRADING, scores[1:], strict=True):
            per_type[t] += int(s < scores[0])
        below += int(np.sum(scores[1:] < scores[0]))
        total += len(DEGRADING)
    return {"share_below": below / total, "copies": total, "below_by_type": per_type}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--biq2021", type=Path, required=True)
    ap.add_argument("--pairs-from", type=Path, required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--pair-images", type=int, default=120)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument(
        "--biq-train", type=int, default=None, help="use the first N rows of BIQ2021 Train (default: all)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "regressor")
    args = ap.parse_args()
    tune_allocator()
    bundle = load(None if args.model == "default" else args.model)
    model, max_side = bundle.features, bundle.max_side
    clive_labels = datasets.load("clive", args.data / "clive")
    biq_labels = limit_train(datasets.load("biq2021", args.biq2021), args.biq_train)
    clive_t, biq_t = (
        extract(model, lab.paths, max_side=max_side, cache=args.out / "cache", progress=True)
        for lab in (clive_labels, biq_labels)
    )
    xc, yc, _ = align(clive_t, clive_labels)
    train_idx, test_idx = biq_labels.split_indices("train"), biq_labels.split_indices("test")
    xb, yb, _ = align(biq_t, biq_labels.subset(train_idx))
    xt, yt, _ = align(biq_t, biq_labels.subset(test_idx))
    subsets = np.array([biq_labels.distortion[i] for i in test_idx])

    start = time.perf_counter()
    sources = find_images([args.pairs_from], recursive=True)[: args.pair_images]
    pairs = degradation_pairs_of_files(model, sources, cache=args.out)
    print(f"{len(pairs)} pairs from {len(sources)} photos in {time.perf_counter() - start:.0f} s")

    # the pair weight, chosen once on BIQ2021 Train rows + pairs (5-fold CV)
    chooser = QualityRegressor().fit(xb, zscore(yb), pairs=pairs)
    weight, alpha_b = chooser.pair_weight_, chooser.alpha_
    print(f"pair weight {weight} (BIQ2021 Train CV: {chooser.selection_.pairs.grid})")
    splits = make_splits(len(yc), n_splits=args.splits, seed=0)
    results = {}
    for recipe in ("clive", "clive+pairs", "clive+biq", "clive+biq+pairs"):
        start = time.perf_counter()
        two = "biq" in recipe
        w = weight if "pairs" in recipe else 0.0
        share = []
        for s in splits:
            # strength on the split's val part (plain ridge), then the final fit with the pairs
            x_tr = np.concatenate([xc[s.train], xb]) if two else xc[s.train]
            y_tr = np.concatenate([zscore(yc[s.train]), zscore(yb)]) if two else yc[s.train]
            y_val = (yc[s.val] - yc[s.train].mean()) / yc[s.train].std() if two else yc[s.val]
            reg = QualityRegressor().fit(x_tr, y_tr, xc[s.val], y_val)
            z = (x_tr - reg.mean_) / reg.scale_
            margin = reg.margin * float(y_tr.std())
            coef, b = ranked_ridge(z, y_tr, pairs / reg.scale_, alpha=reg.alpha_, weight=w, margin=margin)
            reg.coef_, reg.intercept_ = coef, b
            share.append(metrics(reg.predict(xc[s.test]), yc[s.test])["srcc"])
        x_all = np.concatenate([xb, xc]) if two else xc
        y_all = np.concatenate([zscore(yb), zscore(yc)]) if two else yc
        final = QualityRegressor(pair_weights=(w,)).fit(x_all, y_all, pairs=pairs if w else None)
        pred = final.predict(xt)
        row = {
            "clive_share_srcc": float(np.median(share)),
            "clive_share_srcc_std": float(np.std(share)),
            "biq_test_srcc": metrics(pred, yt)["srcc"],
            **{
                f"biq_test_{k}": metrics(pred[subsets == k], yt[subsets == k])["srcc"]
                for k in ("ss01", "ss02", "ss03")
            },
            "sensitivity": sensitivity(model, final, max_side),
            "pair_weight": w,
            "alpha": final.alpha_,
            "seconds": time.perf_counter() - start,
        }
        if not two:  # fitted on CLIVE alone: BIQ2021 Test is the cross-database figure
            row["note"] = "BIQ2021 Test figures are cross-database (fitted on CLIVE only)"
        results[recipe] = row
        print(
            f"{recipe:>16}: CLIVE share {row['clive_share_srcc']:.3f}, BIQ Test {row['biq_test_srcc']:.3f} ("
            + " ".join(f"{k} {row[f'biq_test_{k}']:.3f}" for k in ("ss01", "ss02", "ss03"))
            + "), "
            f"degraded copies below pristine {row['sensitivity']['share_below']:.0%}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    out = {
        "model_id": clive_t.model_id,
        "pairs": len(pairs),
        "pair_weight_chosen": weight,
        "alpha_biq": alpha_b,
    }
    (args.out / "regressor.json").write_text(json.dumps({**out, "results": results}, indent=2))
    print(f"wrote {args.out / 'regressor.json'}")


if __name__ == "__main__":
    main()
