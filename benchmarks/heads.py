"""Is a small non-linear head better than Re-IQA's linear one? Ridge against an MLP and an RBF
kernel ridge, on the same features, with the project's protocols.

    .venv/bin/python benchmarks/heads.py --data DATA --biq2021 BIQ [--model default]
        [--biq-train 4000] [--splits 10] [--out DIR]

DATA holds ``clive/``; BIQ is a clone of the BIQ2021 repository. Features come from the model's
encoders (cached under OUT/cache, so a run after ``benchmarks/databases.py`` or
``benchmarks/regressor.py`` with the same OUT reuses them). Every head sees standardised features
and chooses its own strength (ridge alpha, MLP weight decay, kernel ridge alpha) on training data
only: the val part of each CLIVE split, 5-fold CV inside BIQ2021 Train. Measured (SRCC):

- CLIVE share: ``--splits`` random 70/10/20 splits, median;
- BIQ2021 Test, fitted on BIQ2021 Train (overall and per subset);
- both databases: fitted on all of CLIVE and BIQ2021 Train (scores standardised per database),
  tested on BIQ2021 Test.

Prints a table, writes JSON. The shipped head stays linear unless another is better on both
databases (issue 10).
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

from benchmarks._common import limit_train  # noqa: E402

from reiqa import datasets  # noqa: E402
from reiqa.evaluate import align, make_splits  # noqa: E402
from reiqa.features import extract  # noqa: E402
from reiqa.inference import load  # noqa: E402
from reiqa.regress import srcc  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

#: head -> its strength grid
GRIDS: dict[str, tuple[float, ...]] = {
    "ridge": tuple(np.logspace(-1, 5, 13)),
    "mlp": (1e-2, 1e-1, 1.0, 10.0),
    "kernel": (1e-2, 1e-1, 1.0, 10.0),
}


def _zscore(y: np.ndarray) -> np.ndarray:
    return (y - y.mean()) / y.std()


def _make(head: str, strength: float, width: int):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge
    from sklearn.neural_network import MLPRegressor

    if head == "ridge":
        return Ridge(alpha=strength)
    if head == "mlp":
        return MLPRegressor(
            hidden_layer_sizes=(256,), alpha=strength, early_stopping=True, max_iter=300, random_state=0
        )
    return KernelRidge(kernel="rbf", gamma=1.0 / width, alpha=strength)


def fit_head(head: str, x: np.ndarray, y: np.ndarray, x_val=None, y_val=None):
    """(predict function, chosen strength): standardised inputs and targets, the strength chosen
    on (x_val, y_val) when given, else by 5-fold CV on (x, y)."""
    from sklearn.model_selection import KFold

    mean, scale = x.mean(0), x.std(0) + 1e-8
    ym, ys = y.mean(), y.std()
    z, t = (x - mean) / scale, (y - ym) / ys

    def score(strength: float) -> float:
        if x_val is not None:
            m = _make(head, strength, x.shape[1]).fit(z, t)
            return srcc(m.predict((x_val - mean) / scale), y_val)
        folds = KFold(5, shuffle=True, random_state=0).split(z)
        return float(
            np.mean(
                [
                    srcc(_make(head, strength, x.shape[1]).fit(z[a], t[a]).predict(z[b]), t[b])
                    for a, b in folds
                ]
            )
        )

    best = max(GRIDS[head], key=score)
    final = _make(head, best, x.shape[1]).fit(z, t)
    return (lambda q: final.predict((q - mean) / scale) * ys + ym), best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--biq2021", type=Path, required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--biq-train", type=int, default=4000)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--heads", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "heads")
    args = ap.parse_args()
    tune_allocator()
    bundle = load(None if args.model == "default" else args.model)
    clive_labels = datasets.load("clive", args.data / "clive")
    biq_labels = limit_train(datasets.load("biq2021", args.biq2021), args.biq_train)
    clive_t, biq_t = (
        extract(bundle.features, lab.paths, max_side=bundle.max_side, cache=args.out / "cache", progress=True)
        for lab in (clive_labels, biq_labels)
    )
    xc, yc, _ = align(clive_t, clive_labels)
    test_idx = biq_labels.split_indices("test")
    xb, yb, _ = align(biq_t, biq_labels.subset(biq_labels.split_indices("train")))
    xt, yt, _ = align(biq_t, biq_labels.subset(test_idx))
    subsets = np.array([biq_labels.distortion[i] for i in test_idx])
    splits = make_splits(len(yc), n_splits=args.splits, seed=0)

    results = {}
    for head in args.heads:
        start = time.perf_counter()
        share = []
        for s in splits:
            predict, _ = fit_head(head, xc[s.train], yc[s.train], xc[s.val], yc[s.val])
            share.append(srcc(predict(xc[s.test]), yc[s.test]))
        predict, strength = fit_head(head, xb, yb)
        pred = predict(xt)
        both, _ = fit_head(head, np.concatenate([xc, xb]), np.concatenate([_zscore(yc), _zscore(yb)]))
        results[head] = {
            "clive_share_srcc": float(np.median(share)),
            "biq_test_srcc": srcc(pred, yt),
            **{f"biq_test_{k}": srcc(pred[subsets == k], yt[subsets == k]) for k in ("ss01", "ss02", "ss03")},
            "both_to_biq_test_srcc": srcc(both(xt), yt),
            "biq_strength": float(strength),
            "seconds": time.perf_counter() - start,
        }
        r = results[head]
        print(
            f"{head:7s} | CLIVE share {r['clive_share_srcc']:.3f} | BIQ Test {r['biq_test_srcc']:.3f} "
            f"(ss01 {r['biq_test_ss01']:.3f}, ss02 {r['biq_test_ss02']:.3f}, ss03 {r['biq_test_ss03']:.3f}) "
            f"| both -> BIQ Test {r['both_to_biq_test_srcc']:.3f} | {r['seconds']:.0f} s",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "metric": "SRCC",
        "features": {"model_id": clive_t.model_id, "blocks": clive_t.blocks},
        "biq_train_rows": len(yb),
        "protocols": {
            "clive_share": f"{args.splits} random 70/10/20 splits, strength on val, median of test",
            "biq_test": "fit on BIQ2021 Train (5-fold CV for the strength), test on Test",
            "both": "fit on CLIVE + BIQ2021 Train (z-scored per database), test on BIQ2021 Test",
        },
        "results": results,
    }
    (args.out / "heads.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'heads.json'}")


if __name__ == "__main__":
    main()
