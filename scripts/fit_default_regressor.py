"""Refit a model folder's regressor on CLIVE and BIQ2021 Train together, with ranking pairs.

    .venv/bin/python scripts/fit_default_regressor.py --model MODEL_DIR --data DATA --biq2021 BIQ \\
        --pairs-from BSDS --work WORK [--biq-train 4000] [--pair-images 120] [--pair-weights W ...]

The features are the model's own (its encoders as stored, at its size cap), extracted for the
CLIVE images (DATA/clive) and the first ``--biq-train`` rows of BIQ2021 Train and cached under
WORK; ranking pairs come from the first ``--pair-images`` photos under BSDS (each above its copies
degraded by every type of ``reiqa.ranking.DEGRADING``, 320 px centre crops). Then
``reiqa.regress.fit_databases`` fits one ridge on both databases (scores standardised per
database; strength and pair weight by 5-fold CV on these training data only, or the pair weight
fixed by ``--pair-weights W``), rescaled to CLIVE's 0-100 scale, and the result replaces
MODEL_DIR's regressor. The features have the model card's pooling. ``scripts/build_default_model.sh``
runs this after ``reiqa bundle``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reiqa import datasets  # noqa: E402
from reiqa.atomic import write_json_atomic  # noqa: E402
from reiqa.digest import file_sha256  # noqa: E402
from reiqa.evaluate import align  # noqa: E402
from reiqa.features import extract  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.ranking import DEGRADING, degradation_pairs_of_files  # noqa: E402
from reiqa.regress import FileRef, FitInfo, QualityRegressor, fit_databases  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--biq2021", type=Path, required=True)
    ap.add_argument("--pairs-from", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--biq-train", type=int, default=4000)
    ap.add_argument("--pair-images", type=int, default=120)
    ap.add_argument(
        "--pair-weights",
        type=float,
        nargs="+",
        default=None,
        help="candidate weights of the ranking term (default: the regressor's grid); one value fixes it",
    )
    args = ap.parse_args()
    tune_allocator()
    bundle = load(args.model)
    model, max_side = bundle.features, bundle.max_side
    clive = datasets.load("clive", args.data / "clive")
    biq = datasets.load("biq2021", args.biq2021)
    biq = biq.subset(biq.split_indices("train")[: args.biq_train])
    parts = []
    for labels in (clive, biq):
        table = extract(model, labels.paths, max_side=max_side, cache=args.work / "cache", progress=True)
        parts.append(align(table, labels)[:2])
    sources = find_images([args.pairs_from], recursive=True)[: args.pair_images]
    pairs = degradation_pairs_of_files(model, sources, cache=args.work)
    grid = QualityRegressor(pair_weights=tuple(args.pair_weights)) if args.pair_weights else None
    reg = fit_databases(parts, pairs=pairs, regressor=grid)
    y_clive = parts[0][1]
    scores = FileRef("mos.csv", file_sha256(args.data / "clive" / "mos.csv"))
    reg.info = FitInfo(
        model_id=table.model_id,
        blocks=tuple(table.blocks),
        scores=scores,
        n=sum(len(y) for _, y in parts),
        higher_is_better=True,
        score_range=(float(y_clive.min()), float(y_clive.max())),
        extra={
            "databases": {
                "clive": {"n": len(y_clive), "file": "mos.csv"},
                "biq2021": {
                    "n": len(parts[1][1]),
                    "rows": f"the first {len(parts[1][1])} rows of 'Train (Images and MOS).csv'",
                    "sha256": file_sha256(args.biq2021 / "Train (Images and MOS).csv"),
                },
            },
            "pairs": {
                "n": len(pairs),
                "photos": len(sources),
                "from": f"the first {len(sources)} photos (sorted paths) of BSDS500's images/, "
                "320 px centre crops",
                "types": list(DEGRADING),
            },
            "scale": "CLIVE's MOS scale: each database's scores standardised, the fit mapped to "
            "CLIVE's mean and std",
        },
    )
    reg.save(args.model)
    card = json.loads((args.model / "model.json").read_text(encoding="utf-8"))
    card["score"]["source"] = (
        f"mos.csv (sha256 {scores.sha256[:16]}) + BIQ2021 Train "
        f"(first {len(parts[1][1])} rows), on CLIVE's scale"
    )
    write_json_atomic(args.model / "model.json", card)
    print(
        f"wrote {args.model}: alpha {reg.alpha_:g}, pair weight {reg.pair_weight_:g} ({len(pairs)} pairs; "
        f"CV: {reg.selection_.pairs.grid}), {reg.info.n} images"
    )


if __name__ == "__main__":
    main()
