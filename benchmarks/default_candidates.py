"""Recipes for the default model's regressor, chosen by the worse of two databases (issue 20).

    .venv/bin/python benchmarks/default_candidates.py --data DATA --biq2021 BIQ --pairs-from BSDS \\
        --work DIR [--pair-images 120] [--final]

The encoders are the default model's, run once per image with ``pooling='gap+stages'`` at the
model's size cap (``features.extract``, cached under WORK/cache, the cache that
``scripts/fit_default_regressor.py --work WORK`` reads, so the shipped fit reuses them); the 'gap'
features are columns of those (the head's averages come first in each block):

- ``gap``: Re-IQA's global averages (the shipped default's features, 5,120 wide);
- ``gap+stages``: with the averages of the last three stages' ends (7,616 wide).

Recipes (the regressor only):

- ``clive``: CLIVE rows only; ``biq``: BIQ2021 rows only;
- ``joint+pairs``: both, scores standardised per database, one ridge with the ranking term of
  ``--pair-images`` BSDS500 photos (each above its copies degraded by every
  ``ranking.DEGRADING`` type, 320 px crops) at weight 10, the shipped default's (chosen there by
  5-fold CV over 0-10; a search per split costs an L-BFGS solve per weight and fold).

Protocol, the figure a recipe is chosen by: 10 random 70/10/20 splits of the CLIVE share (seed 0).
Each recipe is fitted on the split's CLIVE train part (and, for ``joint+pairs``, the first
``--biq-fit`` rows of BIQ2021 Train), the ridge strength chosen on the split's CLIVE val part by
SRCC (``biq``: 5-fold CV inside its rows), and scores the CLIVE test part and the next
``--biq-val`` rows of BIQ2021 Train (Test not read); medians over splits. ``worse`` is the lower
of the two.

``--final`` instead reads BIQ2021 Test, once: the ``--shipped`` model folders (the default
model's encoders, each with its own pooling and regressor, as shipped), overall and per subset,
and across databases for each feature set (ridge on all CLIVE -> BIQ2021 Test, on the
``--biq-fit + --biq-val`` BIQ2021 rows -> CLIVE). Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import reiqa  # noqa: E402
from reiqa import datasets  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.evaluate import align, make_splits, metrics  # noqa: E402
from reiqa.features import extract  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.ranking import degradation_pairs_of_files  # noqa: E402
from reiqa.regress import QualityRegressor, fit_databases, ranked_ridge  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

BLOCKS = 4  # quality full, half; content full, half
HEAD = 1280  # EfficientNet-Lite0's head: the 'gap' part of each block
PAIR_WEIGHT = 10.0  # the shipped default's, chosen by 5-fold CV over 0-10 on its training data
RECIPES = ("clive", "biq", "joint+pairs")


def gap_columns(width: int) -> np.ndarray:
    """Columns of the 'gap' features inside a 'gap+stages' vector of ``width``."""
    block = width // BLOCKS
    return np.concatenate([np.arange(k * block, k * block + HEAD) for k in range(BLOCKS)])


class JointRidge:
    """Both databases' rows, scores standardised per database, one ridge, plus the ranking term at
    a fixed weight (0: none). The strength is chosen on ``val`` (CLIVE rows) by SRCC, as the
    protocol does for one database. Predicts in standardised units (rank measures only)."""

    def __init__(self, clive, biq, val, pairs: np.ndarray, weight: float) -> None:
        x = np.concatenate([clive[0], biq[0]])
        means = [float(clive[1].mean()), float(biq[1].mean())]
        stds = [float(clive[1].std()), float(biq[1].std())]
        y = np.concatenate([(clive[1] - means[0]) / stds[0], (biq[1] - means[1]) / stds[1]])
        plain = QualityRegressor().fit(x, y, val[0], (val[1] - means[0]) / stds[0])
        self.alpha, self.mean, self.scale = plain.alpha_, plain.mean_, plain.scale_
        self.coef, self.intercept = ranked_ridge(
            (x - self.mean) / self.scale,
            y,
            pairs / self.scale,
            alpha=self.alpha,
            weight=weight,
            margin=plain.margin * float(y.std()),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale @ self.coef + self.intercept


def fit_recipe(recipe: str, clive, biq, val, pairs: np.ndarray):
    """The recipe's regressor on these (features, scores) rows; ``val``: CLIVE rows for the
    strength (None: 5-fold CV inside the training rows)."""
    if recipe == "clive":
        return QualityRegressor().fit(*clive, *(val or (None, None)))
    if recipe == "biq":
        return QualityRegressor().fit(*biq)
    weight = PAIR_WEIGHT if recipe == "joint+pairs" else 0.0
    if val is None:
        grid = QualityRegressor(pair_weights=(weight,))
        return fit_databases([clive, biq], pairs=pairs if weight else None, regressor=grid)
    return JointRidge(clive, biq, val, pairs, weight)


def split_protocol(recipe: str, xc, yc, xb, yb, biq_fit: int, splits: list, pairs: np.ndarray) -> dict:
    clive_srcc, biq_srcc = [], []
    fit_b = (xb[:biq_fit], yb[:biq_fit])
    once = fit_recipe("biq", None, fit_b, None, pairs) if recipe == "biq" else None  # no CLIVE row
    for split in splits:
        val = (xc[split.val], yc[split.val])
        reg = once or fit_recipe(recipe, (xc[split.train], yc[split.train]), fit_b, val, pairs)
        clive_srcc.append(metrics(reg.predict(xc[split.test]), yc[split.test])["srcc"])
        biq_srcc.append(metrics(reg.predict(xb[biq_fit:]), yb[biq_fit:])["srcc"])
    c, b = float(np.median(clive_srcc)), float(np.median(biq_srcc))
    spread = float(np.std(clive_srcc))
    return {"clive_share": c, "clive_share_std": spread, "biq2021_val": b, "worse": min(c, b)}


def final_tables(args, table, features_of, sets, cols, yc, yb) -> None:
    """BIQ2021 Test, read once: the ``--shipped`` model folders as they are (their own regressors
    on these features) and the across-database figures of each feature set."""
    test = table.subset(table.split_indices("test"))
    xt_all, yt = features_of(test)
    subsets = np.asarray(test.distortion)

    def test_figures(pred: np.ndarray) -> dict:
        out = {"biq2021_test": metrics(pred, yt)["srcc"]}
        out.update(
            {s: metrics(pred[subsets == s], yt[subsets == s])["srcc"] for s in ("ss01", "ss02", "ss03")}
        )
        return out

    final: dict = {"shipped": {}, "across": {}}
    for folder in args.shipped:
        shipped = reiqa.load(None if folder == "default" else folder)
        xt = xt_all[:, cols] if shipped.options.pooling == "gap" else xt_all
        assert len(shipped.regressor.coef_) == xt.shape[1], f"{folder}: not the default model's encoders"
        final["shipped"][folder] = {"name": shipped.name, **test_figures(shipped.regressor.predict(xt))}
        print(folder, ", ".join(f"{k} {v:.3f}" for k, v in final["shipped"][folder].items() if k != "name"))
    for pooling, (xc, xb, _) in sets.items():
        xt = xt_all[:, cols] if pooling == "gap" else xt_all
        clive_only, biq_only = QualityRegressor().fit(xc, yc), QualityRegressor().fit(xb, yb)
        final["across"][pooling] = {
            "clive_to_biq2021_test": metrics(clive_only.predict(xt), yt)["srcc"],
            "biq2021_train_to_clive": metrics(biq_only.predict(xc), yc)["srcc"],
        }
        print(pooling, final["across"][pooling])
    final["protocol"] = (
        "BIQ2021 Test (2,000 photos, never used for fitting or choosing), SRCC overall and per subset; "
        f"across: ridge (5-fold CV) on all {len(yc)} CLIVE images -> BIQ2021 Test, and on the first "
        f"{len(yb)} rows of BIQ2021 Train -> all CLIVE images"
    )
    write_text_atomic(args.out, json.dumps(final, indent=2) + "\n")  # the folder is made if missing
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--biq2021", type=Path, required=True)
    ap.add_argument("--pairs-from", type=Path, required=True)
    ap.add_argument("--pair-images", type=int, default=120)
    ap.add_argument("--biq-fit", type=int, default=3000)
    ap.add_argument("--biq-val", type=int, default=1000)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--final", action="store_true", help="read BIQ2021 Test (once, at the end) instead")
    ap.add_argument("--shipped", action="append", default=[], help="with --final: a model folder to score")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "default-candidates.json")
    args = ap.parse_args()
    tune_allocator()
    model = reiqa.load("default")
    staged = model.features.with_pooling("gap+stages")

    def features_of(labels) -> tuple[np.ndarray, np.ndarray]:
        table = extract(
            staged, labels.paths, max_side=model.max_side, cache=args.work / "cache", progress=True
        )
        return align(table, labels)[:2]

    clive_labels = datasets.load("clive", args.data / "clive")
    table = datasets.load("biq2021", args.biq2021)
    biq_labels = table.subset(table.split_indices("train")[: args.biq_fit + args.biq_val])
    (xc, yc), (xb, yb) = features_of(clive_labels), features_of(biq_labels)
    sources = find_images([args.pairs_from], recursive=True)[: args.pair_images]
    start = time.perf_counter()
    pairs = degradation_pairs_of_files(staged, sources, cache=args.work)
    print(f"pairs: {len(pairs)} from {len(sources)} photos ({time.perf_counter() - start:.0f} s)")
    cols = gap_columns(xc.shape[1])
    sets = {"gap": (xc[:, cols], xb[:, cols], pairs[:, cols]), "gap+stages": (xc, xb, pairs)}
    if args.final:
        final_tables(args, table, features_of, sets, cols, yc, yb)
        return
    splits = make_splits(len(yc), n_splits=args.splits, seed=0)
    results: dict = {}
    row = "{:<11} {:<12} {:>12} {:>9} {:>7} {:>8}"
    print(row.format("features", "recipe", "CLIVE share", "BIQ val", "worse", "time"))
    for pooling, (xc, xb, dz) in sets.items():
        for recipe in RECIPES:
            start = time.perf_counter()
            r = split_protocol(recipe, xc, yc, xb, yb, args.biq_fit, splits, dz)
            results[f"{pooling}/{recipe}"] = r
            cells = [f"{r[k]:.3f}" for k in ("clive_share", "biq2021_val", "worse")]
            print(row.format(pooling, recipe, *cells, f"{time.perf_counter() - start:.0f} s"))
    report = {
        "protocol": (
            f"CLIVE share ({len(yc)} images): {args.splits} random 70/10/20 splits (seed 0), fitted on "
            f"train (joint+pairs: and the first {args.biq_fit} rows of BIQ2021 Train), strength on val "
            f"by SRCC, median test SRCC; BIQ2021 validation: SRCC on the next {args.biq_val} rows of "
            f"Train, median over the same fits (biq: fitted once on the {args.biq_fit} rows, 5-fold "
            f"CV); pair weight {PAIR_WEIGHT:g}"
        ),
        "pairs": f"{len(pairs)} from the first {len(sources)} BSDS500 photos (320 px crops)",
        "model": model.name,
        "results": results,
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")  # the folder is made if missing
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
