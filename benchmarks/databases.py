"""Accuracy of a model's features on two databases, within and across them.

    .venv/bin/python benchmarks/databases.py --data DATA --biq2021 BIQ [--model default]
        [--quality Q.json --content C.json] [--splits 10] [--out DIR]

DATA holds ``clive/`` (``images/`` and ``mos.csv``); BIQ is a clone of the BIQ2021 repository
(``Train (Images and MOS).csv``, ``Test (Images and MOS).csv``, ``Images/``). Features are
extracted once (cached under OUT/cache) with a model folder's encoders (``--model``, default: the
embedded model) or with encoder files. Protocols, each with the ridge strength chosen on training
data only (a val part, or 5-fold CV inside train):

- CLIVE share: ``--splits`` random 70/10/20 splits, median of the test SRCC/PLCC;
- BIQ2021: fit on its published Train split, test on Test, overall and per subset (ss01 photos
  not taken for IQA, ss02 degraded on purpose while shooting, ss03 Unsplash);
- across databases: fit on all of one database, test on the other (CLIVE -> BIQ2021 Test,
  BIQ2021 Train -> CLIVE).

Each for all features and for each encoder's blocks alone. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import limit_train  # noqa: E402

from reiqa import datasets  # noqa: E402
from reiqa.evaluate import align, evaluate, make_splits, metrics  # noqa: E402
from reiqa.features import FeatureModel, FeatureTable, extract  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.regress import QualityRegressor  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


def _fit_test(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> dict:
    reg = QualityRegressor().fit(*train)
    result = metrics(reg.predict(test[0]), test[1])
    return {"srcc": result["srcc"], "plcc": result["plcc"], "alpha": reg.alpha_, "n_test": len(test[1])}


def _variants(table: FeatureTable) -> list[tuple[str, list[str]]]:
    blocks = [b for b, _ in table.blocks]
    out = [("all features", blocks)]
    for kind in ("quality", "content"):
        names = [b for b in blocks if b.startswith(kind)]
        if names and len(names) < len(blocks):
            out.append((f"{kind} only", names))
    return out


def run(clive: FeatureTable, biq: FeatureTable, clive_labels, biq_labels, splits: int) -> dict:
    results = {}
    train = biq_labels.subset(biq_labels.split_indices("train"))
    test = biq_labels.subset(biq_labels.split_indices("test"))
    for name, blocks in _variants(clive):
        c = align(clive.select(blocks), clive_labels)[:2]
        tr, te = align(biq.select(blocks), train)[:2], align(biq.select(blocks), test)[:2]
        share = evaluate(*c, make_splits(len(c[1]), n_splits=splits, seed=0), name=name).summary()
        row = {
            "clive_share_srcc": share["srcc"]["median"],
            "clive_share_plcc": share["plcc"]["median"],
            "biq_test": _fit_test(tr, te),
            "clive_to_biq_test": _fit_test(c, te),
            "biq_train_to_clive": _fit_test(tr, c),
        }
        reg = QualityRegressor().fit(*tr)
        pred = reg.predict(te[0])
        for subset in ("ss01", "ss02", "ss03"):
            keep = np.array([d == subset for d in test.distortion])
            row[f"biq_test_{subset}"] = metrics(pred[keep], te[1][keep])["srcc"]
        results[name] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--biq2021", type=Path, required=True)
    ap.add_argument("--model", default="default", help="'default' or a model folder")
    ap.add_argument("--quality", type=Path, help="quality encoder.json (instead of --model)")
    ap.add_argument("--content", type=Path, help="content encoder.json (instead of --model)")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument(
        "--biq-train", type=int, default=None, help="use the first N rows of BIQ2021 Train (default: all)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "databases")
    args = ap.parse_args()
    tune_allocator()
    if args.quality or args.content:
        model, max_side = FeatureModel.from_files(args.quality, args.content), None
    else:
        bundle = load(None if args.model == "default" else args.model)
        model, max_side = bundle.features, bundle.max_side
    clive_labels = datasets.load("clive", args.data / "clive")
    biq_labels = limit_train(datasets.load("biq2021", args.biq2021), args.biq_train)
    tables = [
        extract(
            model,
            labels.paths,
            device=args.device,
            max_side=max_side,
            cache=args.out / "cache",
            progress=True,
        )
        for labels in (clive_labels, biq_labels)
    ]
    results = run(*tables, clive_labels, biq_labels, args.splits)
    header = ["features", "CLIVE share", "BIQ Test", "ss01", "ss02", "ss03", "CLIVE->BIQ", "BIQ->CLIVE"]
    print(" | ".join(header))
    for name, r in results.items():
        cells = [
            r["clive_share_srcc"],
            r["biq_test"]["srcc"],
            r["biq_test_ss01"],
            r["biq_test_ss02"],
            r["biq_test_ss03"],
            r["clive_to_biq_test"]["srcc"],
            r["biq_train_to_clive"]["srcc"],
        ]
        print(" | ".join([name, *(f"{v:.3f}" for v in cells)]))
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "metric": "SRCC (PLCC in the JSON)",
        "protocols": {
            "clive_share": f"{args.splits} random 70/10/20 splits, median",
            "biq_test": "fit on BIQ2021 Train (5-fold CV for the strength), test on Test",
            "cross": "fit on all of one database, test on the other",
        },
        "features": {"model_id": tables[0].model_id, "blocks": tables[0].blocks},
        "results": results,
    }
    (args.out / "databases.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'databases.json'}")


if __name__ == "__main__":
    main()
