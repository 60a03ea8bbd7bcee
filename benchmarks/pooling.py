"""Richer pooling of the frozen encoders (issue 20, "cheaper levers"), on the CLIVE share.

    .venv/bin/python benchmarks/pooling.py --data DATA [--biq2021 BIQ] [--model DIR] [--splits 10]
        [--cache DIR]

DATA holds ``clive/`` (``images/`` and ``mos.csv``); BIQ is a clone of the BIQ2021 repository.
Each image is prepared as the model scores it (``ReIQA.prepare``: the card's size cap), then
both EfficientNet-Lite encoders run at full and half scale once, with the outputs of the last
three stages and of the head kept. From them, feature sets are assembled and each is measured
with the project's protocol (10 random 70/10/20 splits, ridge strength on val by SRCC, median
over the test parts):

- ``gap``: the global average of the head's map, today's features (checked equal to the model's
  own, so the table starts from what ships);
- ``gap+std``: with the standard deviation of the head's map per channel;
- ``gap+s6s7`` / ``gap+s5s6s7``: with the global averages of the last two / three stages' maps;
- ``gap+std+s6s7``.

With ``--biq2021``, each set is also measured on a validation part of BIQ2021 Train (ridge by
5-fold CV on the first ``--biq-fit`` rows of Train, tested on the next ``--biq-val`` rows), and
across databases on that part (fitted on all CLIVE). BIQ2021 Test is not read: it is kept for
the final choice (issue 20, "choose honestly"). The column ``worse`` is the lower of the CLIVE
share and the BIQ2021 validation SRCC, the figure a lever is chosen by.

Prints a table and writes JSON (``--out``). The regressor of the shipped model is not used: each
set gets its own ridge, as ``reiqa evaluate`` does. ``--cache`` keeps the extracted parts.
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

import reiqa  # noqa: E402
from reiqa import datasets  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.evaluate import evaluate, make_splits, metrics  # noqa: E402
from reiqa.models.efficientnet_lite import LITE0_STAGES, EfficientNetLite  # noqa: E402
from reiqa.regress import QualityRegressor  # noqa: E402
from reiqa.resize import half_scale  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

#: the last block of each of the last three stages of EfficientNet-Lite0
STAGE_ENDS = {f"s{i + 1}": int(np.cumsum([s[0] for s in LITE0_STAGES])[i]) - 1 for i in (4, 5, 6)}
PARTS = ("gap", "std", "s5", "s6", "s7")
SETS = {
    "gap": ("gap",),
    "gap+std": ("gap", "std"),
    "gap+s6s7": ("gap", "s6", "s7"),
    "gap+s5s6s7": ("gap", "s5", "s6", "s7"),
    "gap+std+s6s7": ("gap", "std", "s6", "s7"),
}


def pooled_parts(backbone: EfficientNetLite, x: torch.Tensor) -> dict[str, np.ndarray]:
    """(1, 3, H, W) normalised -> the head's average and std, and the stages' averages."""
    kept: dict[str, torch.Tensor] = {}
    hooks = [
        backbone.blocks[index].register_forward_hook(
            lambda _m, _i, out, name=name: kept.__setitem__(name, out.mean(dim=(2, 3)))
        )
        for name, index in STAGE_ENDS.items()
    ]

    def head(_m, _i, out) -> None:
        kept["gap"], kept["std"] = out.mean(dim=(2, 3)), out.std(dim=(2, 3))

    hooks.append(backbone.head.register_forward_hook(head))
    try:
        backbone(x)
    finally:
        for h in hooks:
            h.remove()
    return {k: v[0].float().numpy() for k, v in kept.items()}


@torch.inference_mode()
def image_parts(model: reiqa.ReIQA, path: Path) -> dict[str, np.ndarray]:
    """Every part of one image, in the model's block order (quality full, half; content full, half)."""
    image = model.prepare(str(path))
    full = image[None].contiguous(memory_format=torch.channels_last)
    half = half_scale(full)
    net = model.features
    out: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
    for backbone, norm in ((net.quality, net.quality_norm), (net.content, net.content_norm)):
        for x in (full, half):
            for name, value in pooled_parts(backbone, norm(x)).items():
                out[name].append(value)
    return {name: np.concatenate(values) for name, values in out.items()}


def extract_parts(
    model: reiqa.ReIQA, paths: list[Path], cache: Path | None, name: str
) -> dict[str, np.ndarray]:
    """Every part of every image, (n, width) per part; read from / written to ``cache``."""
    target = cache / f"{name}-{model.model_id}-{len(paths)}.npz" if cache else None
    if target is not None and target.is_file():
        return dict(np.load(target))
    start = time.perf_counter()
    rows = [image_parts(model, p) for p in paths]
    print(f"{name}: {len(paths)} images, {(time.perf_counter() - start) / len(paths) * 1000:.0f} ms each")
    parts = {p: np.stack([r[p] for r in rows]) for p in PARTS}
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **parts)
    return parts


def check_gap_is_the_models(model: reiqa.ReIQA, paths: list[Path], gap: np.ndarray) -> None:
    records = model.score_batch([str(p) for p in paths], [model.prepare(str(p)) for p in paths])
    worst = max(abs(a - r.score) for a, r in zip(model.regressor.predict(gap), records, strict=True))
    assert worst < 1e-3, f"the 'gap' set is not the model's own features (scores differ by {worst})"


def _fit_test(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    return metrics(QualityRegressor().fit(x_fit, y_fit).predict(x_test), y_test)["srcc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a quick check)")
    ap.add_argument("--biq2021", type=Path, default=None)
    ap.add_argument("--biq-fit", type=int, default=3000)
    ap.add_argument("--biq-val", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "pooling.json")
    args = ap.parse_args()
    tune_allocator()
    model = reiqa.load(args.model)
    labels = datasets.load("clive", args.data / "clive")
    paths, mos = list(labels.paths)[: args.limit], np.asarray(labels.scores)[: args.limit]
    clive = extract_parts(model, paths, args.cache, "clive")
    check_gap_is_the_models(model, paths[:4], clive["gap"][:4])
    biq = None
    if args.biq2021 is not None:
        table = datasets.load("biq2021", args.biq2021)
        train = table.split_indices("train")[: args.biq_fit + args.biq_val]
        biq_paths, biq_mos = [table.paths[i] for i in train], np.asarray(table.scores)[train]
        biq = extract_parts(model, biq_paths, args.cache, "biq2021-train")
    splits = make_splits(len(paths), n_splits=args.splits, seed=0)
    results = {}
    head = ("features", "width", "CLIVE SRCC", "CLIVE PLCC", "BIQ val", "CLIVE->BIQ", "worse")
    row = "{:<14} {:>6} {:>14} {:>14} {:>8} {:>10} {:>6}"
    print(row.format(*head))
    for name, parts in SETS.items():
        x = np.concatenate([clive[p] for p in parts], axis=1)
        summary = evaluate(x, mos, splits, name=name).summary()
        result = {"width": x.shape[1], **{k: summary[k] for k in ("srcc", "plcc")}}
        if biq is not None:
            xb = np.concatenate([biq[p] for p in parts], axis=1)
            fit, val = slice(0, args.biq_fit), slice(args.biq_fit, None)
            result["biq2021_val_srcc"] = _fit_test(xb[fit], biq_mos[fit], xb[val], biq_mos[val])
            result["clive_to_biq2021_val_srcc"] = _fit_test(x, mos, xb[val], biq_mos[val])
            result["worse"] = min(summary["srcc"]["median"], result["biq2021_val_srcc"])
        results[name] = result
        cells = [f"{summary[k]['median']:.3f} ± {summary[k]['std']:.3f}" for k in ("srcc", "plcc")]
        more = [
            f"{result.get(k, float('nan')):.3f}"
            for k in ("biq2021_val_srcc", "clive_to_biq2021_val_srcc", "worse")
        ]
        print(row.format(name, x.shape[1], *cells, *more))
    report = {
        "protocol": f"CLIVE share ({len(paths)} images), {args.splits} random 70/10/20 splits (seed 0), "
        "ridge strength on val by SRCC, median and std over the test parts"
        + (
            f"; BIQ2021 validation: ridge by 5-fold CV on the first {args.biq_fit} rows of Train, SRCC on "
            f"the next {args.biq_val} (Test not read); CLIVE->BIQ: fitted on all CLIVE, same rows"
            if biq is not None
            else ""
        ),
        "model": model.name,
        "model_id": model.model_id,
        "results": results,
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")  # the folder is made if missing
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
