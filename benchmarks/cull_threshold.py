"""Which embedding and which ``--similarity`` should ``reiqa cull`` use? Measured on bursts.

    .venv/bin/python benchmarks/cull_threshold.py --bsds DATA/BSR/BSDS500/data/images \\
        --kodak DATA/kodak24 [--choose 100] [--report 100] [--features /tmp/cull-features.npz] \\
        [--out docs/reports/cull-threshold.json]

Every photo becomes a burst of ``len(VARIANTS)`` shots of one scene, made with the project's own
distortion engine and resize: the photo, re-framed crops (75-90 % and 55-70 % of each side, at a
random place), a rescaled copy (50-75 %), and copies re-exposed (brighten, darken), blurred
(Gaussian or motion), noisy (white or colour noise) or JPEG-compressed at the catalogue's levels
2-4 of 5, each also shifted a little (a crop of 90-100 % of each side, as a hand-held burst is),
and one copy spoiled at level 5 by one of those. Different photos are different scenes.

The default model's content encoder runs once on every shot, at full and half scale, as the
model's own features compute it (the quality encoder, which the embeddings do not use, is left
out to save time); the candidate embeddings are parts of those features. The embedding and the
threshold are chosen on one set of photos (``--choose`` photos of BSDS500 train) and reported on
others (``--report`` photos of BSDS500 test, and Kodak's 24):

- each candidate embedding gets the threshold of the grid with the highest recall of the groups
  that ``reiqa cull`` makes (pairs at or above it joined by single linkage), pairwise against the
  scenes, among those whose groups' pairwise precision is at least 0.99 (a false merge can drop a
  scene's only keeper, a missed merge only keeps a shot too many); the embedding whose pick
  recalls most wins (the average precision of "same scene" over all pairs is reported too);
- chaining: the precision of the groups against that of the pairs they are made of (single
  linkage can only lose precision by chaining), and the largest group against a burst's size.

``--features`` keeps the shots' features in a file (and reads them back on the next run).
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

from reiqa import distortions  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.cull import DEFAULT_SIMILARITY, components, normalise, similar_pairs  # noqa: E402
from reiqa.features import FeatureModel, encode_mixed, prepare  # noqa: E402
from reiqa.inference import ReIQA, load  # noqa: E402
from reiqa.inputs import find_images  # noqa: E402
from reiqa.io import load_image  # noqa: E402
from reiqa.resize import resize  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402

VARIANTS = (
    "original",
    "reframed",
    "zoomed",
    "rescaled",
    "brighter",
    "darker",
    "blurred",
    "noisy",
    "jpeg",
    "spoiled-level5",
)
SPOILERS = {
    "brighter": ("brighten",),
    "darker": ("darken",),
    "blurred": ("gaussian_blur", "motion_blur"),
    "noisy": ("white_noise", "color_noise"),
    "jpeg": ("jpeg",),
}
GRID = np.round(np.arange(0.50, 0.991, 0.01), 2)
PRECISION = 0.99  # the groups' pairwise precision a threshold must reach on the choose set


def _crop(x: torch.Tensor, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """A window of ``low``-``high`` of each side (one fraction for both), at a random place."""
    f = low + (high - low) * float(torch.rand((), generator=g))
    h, w = x.shape[-2:]
    ch, cw = max(16, round(h * f)), max(16, round(w * f))
    top = int(torch.randint(0, h - ch + 1, (), generator=g))
    left = int(torch.randint(0, w - cw + 1, (), generator=g))
    return x[:, top : top + ch, left : left + cw]


def burst(photo: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """The shots of VARIANTS, in order, of one photo (3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    h, w = photo.shape[-2:]
    s = 0.5 + 0.25 * float(torch.rand((), generator=g))
    shots = [
        photo,
        _crop(photo, 0.75, 0.90, g),
        _crop(photo, 0.55, 0.70, g),
        resize(photo, (round(h * s), round(w * s))),
    ]
    for kind in VARIANTS[4:]:
        family = SPOILERS[kind] if kind in SPOILERS else sum(SPOILERS.values(), ())
        name = family[int(torch.randint(0, len(family), (), generator=g))]
        level = 4 if kind == "spoiled-level5" else int(torch.randint(1, 4, (), generator=g))
        shaken = _crop(photo, 0.90, 1.0, g)[None]
        shots.append(distortions.apply(shaken, name, level, generator=g)[0])
    return shots


def content_only(model: ReIQA) -> FeatureModel:
    """The model's content encoder alone (its blocks: content_full, content_half)."""
    f = model.features
    net = FeatureModel(None, f.content, content_norm=f.content_norm.kind, pooling=f.pooling)
    return net.to(memory_format=torch.channels_last)


def shot_features(model: ReIQA, photos: list[Path], seed: int) -> np.ndarray:
    """(len(photos) * len(VARIANTS), D) features, the shots of photo k at rows k*V .. k*V+V-1."""
    rows = []
    start = time.perf_counter()
    net = content_only(model)
    for k, path in enumerate(photos):
        shots = [prepare(s, model.options) for s in burst(load_image(path), seed * 100_003 + k)]
        feats = encode_mixed(net, list(enumerate(shots)), channels_last=True, amp="none")
        rows += [feats[i] for i in range(len(shots))]
        if (k + 1) % 20 == 0:
            print(f"  {k + 1}/{len(photos)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    return np.stack(rows).astype(np.float32)


def embedding_candidates(model: ReIQA) -> dict[str, list[tuple[int, int]]]:
    """name -> the column ranges it is made of (each range L2-normalised, then averaged)."""
    starts, pos = {}, 0
    for name, width in content_only(model).blocks():
        starts[name] = (pos, pos + width)
        pos += width
    gap = model.features.content.gap_dim

    def head(block: str) -> tuple[int, int]:
        return (starts[block][0], starts[block][0] + gap)

    return {
        "content full, head GAP": [head("content_full")],
        "content full, GAP + stages": [starts["content_full"]],
        "content half, head GAP": [head("content_half")],
        "content full + half, head GAP": [head("content_full"), head("content_half")],
        "content full + half, GAP + stages": [starts["content_full"], starts["content_half"]],
    }


def embed(features: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    parts = [normalise(features[:, a:b]) for a, b in ranges]
    return normalise(np.concatenate(parts, axis=1))


def average_precision(sims: np.ndarray, same: np.ndarray) -> float:
    order = np.argsort(-sims, kind="stable")
    hits = same[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def all_pairs(unit: np.ndarray, scene: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(unit), 1)
    return (unit @ unit.T)[i, j], scene[i] == scene[j]


def pair_counts(labels: np.ndarray, scene: np.ndarray) -> dict[str, float]:
    """Pairwise precision / recall of predicted groups against scenes."""

    def pairs(counts: np.ndarray) -> int:
        return int((counts * (counts - 1) // 2).sum())

    _, joint = np.unique(np.stack([labels, scene]), axis=1, return_counts=True)
    tp = pairs(joint)
    predicted = pairs(np.unique(labels, return_counts=True)[1])
    true = pairs(np.unique(scene, return_counts=True)[1])
    p = tp / predicted if predicted else 1.0
    r = tp / true if true else 1.0
    f05 = 1.25 * p * r / (0.25 * p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f05": f05, "groups": len(np.unique(labels))}


def sweep(unit: np.ndarray, scene: np.ndarray) -> dict[str, list[dict]]:
    """Group metrics over GRID, and the raw pairs' (edges') precision and recall."""
    sims, same = all_pairs(unit, scene)
    out: dict[str, list[dict]] = {"groups": [], "edges": []}
    for t in GRID:
        labels = components(len(unit), similar_pairs(unit, t))
        largest = int(np.bincount(labels).max())
        out["groups"].append({"t": float(t), **pair_counts(labels, scene), "largest": largest})
        above = sims >= t
        out["edges"].append(
            {
                "t": float(t),
                "precision": float(same[above].mean()) if above.any() else 1.0,
                "recall": float(above[same].mean()),
            }
        )
    return out


def recall_by_variant(unit: np.ndarray, similarity: float) -> dict[str, float]:
    """Share of shots of each kind whose group (single linkage) holds their burst's original."""
    labels = components(len(unit), similar_pairs(unit, similarity))
    v = len(VARIANTS)
    originals = labels[::v].repeat(v)
    return {kind: float((labels[k::v] == originals[k::v]).mean()) for k, kind in enumerate(VARIANTS)}


def evaluate(name: str, feats: np.ndarray, ranges, t: float) -> dict:
    unit = embed(feats, ranges)
    scene = np.arange(len(unit)) // len(VARIANTS)
    labels = components(len(unit), similar_pairs(unit, t))
    sims, same = all_pairs(unit, scene)
    above = sims >= t
    return {
        "set": name,
        "shots": len(unit),
        "scenes": int(scene.max()) + 1,
        "groups": {**pair_counts(labels, scene), "largest": int(np.bincount(labels).max())},
        "edges": {"precision": float(same[above].mean()), "recall": float(above[same].mean())},
        "average_precision": average_precision(sims, same),
        "recall_by_variant": recall_by_variant(unit, t),
        "hardest_other_scene": float(sims[~same].max()),
    }


def load_or_compute(args, model: ReIQA, sets: dict[str, list[Path]]) -> dict[str, np.ndarray]:
    out = {}
    if args.features is not None and args.features.is_file():  # sets finished by an earlier run
        stored = np.load(args.features)
        if stored["model_id"].item() == model.model_id:
            out = {k: stored[k] for k in sets if k in stored}
    for name, photos in sets.items():
        if name in out and len(out[name]) == len(photos) * len(VARIANTS):
            continue
        print(f"{name}: {len(photos)} photos x {len(VARIANTS)} shots", flush=True)
        out[name] = shot_features(model, photos, seed=args.seed)
        if args.features is not None:
            np.savez(args.features, model_id=np.array(model.model_id), **out)
    return out


def choose(feats: np.ndarray, candidates: dict) -> tuple[str, dict, dict]:
    """For each embedding, the sweep of its thresholds and its pick: the highest recall of the
    groups with a precision of at least PRECISION (equal recalls: the higher threshold). The
    embedding whose pick has the highest recall wins."""
    scene = np.arange(len(feats)) // len(VARIANTS)
    table, curves = {}, {}
    for name, ranges in candidates.items():
        unit = embed(feats, ranges)
        curves[name] = sweep(unit, scene)
        ok = [g for g in curves[name]["groups"] if g["precision"] >= PRECISION]
        pick = max(ok, key=lambda g: (g["recall"], g["t"]))
        table[name] = {"average_precision": average_precision(*all_pairs(unit, scene)), "pick": pick}
        print(
            f"  {name:<36} AP {table[name]['average_precision']:.4f}  at {pick['t']:.2f}: groups P "
            f"{pick['precision']:.4f} R {pick['recall']:.4f} (largest {pick['largest']})"
        )
    best = max(table, key=lambda n: (table[n]["pick"]["recall"], table[n]["average_precision"]))
    return best, table, curves[best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bsds", type=Path, required=True, help="BSDS500's data/images folder")
    ap.add_argument("--kodak", type=Path, required=True, help="Kodak's 24 photos")
    ap.add_argument("--choose", type=int, default=100, help="BSDS500 train photos to choose on")
    ap.add_argument("--report", type=int, default=100, help="BSDS500 test photos to report on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", type=Path, help="keep the shots' features in this .npz")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "cull-threshold.json")
    args = ap.parse_args()
    tune_allocator()
    model = load("default", device="cpu")
    sets = {
        "choose_bsds_train": find_images([args.bsds / "train"])[: args.choose],
        "report_bsds_test": find_images([args.bsds / "test"])[: args.report],
        "report_kodak": find_images([args.kodak]),
    }
    feats = load_or_compute(args, model, sets)
    candidates = embedding_candidates(model)
    print(f"choosing on BSDS500 train: the highest recall of groups at a precision >= {PRECISION}")
    best, table, curves = choose(feats["choose_bsds_train"], candidates)
    pick = table[best]["pick"]
    print(f"embedding: {best}; threshold {pick['t']:.2f}")
    _print_sweep(curves, pick)
    reports = [
        evaluate(n, feats[n], candidates[best], pick["t"]) for n in ("report_bsds_test", "report_kodak")
    ]
    both = np.concatenate([feats["report_bsds_test"], feats["report_kodak"]])
    reports.append(evaluate("report_both", both, candidates[best], pick["t"]))
    _print_reports(reports, pick["t"])
    result = {
        "model": model.name,
        "model_id": model.model_id,
        "variants": list(VARIANTS),
        "photos": {k: [p.name for p in v] for k, v in sets.items()},
        "precision_target": PRECISION,
        "candidates_on_choose_set": table,
        "embedding": best,
        "threshold": pick["t"],
        "default_in_code": DEFAULT_SIMILARITY,
        "sweep_choose_set": curves,
        "report": reports,
    }
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


def _print_sweep(curves: dict, best: dict) -> None:
    print(f"{'t':>5} | {'groups P':>8} {'R':>6} {'F0.5':>6} {'largest':>7} | {'pairs P':>7} {'R':>6}")
    for g, e in zip(curves["groups"], curves["edges"], strict=True):
        if round(g["t"] * 100) % 5 == 0 or g["t"] == best["t"]:
            print(
                f"{g['t']:5.2f} | {g['precision']:8.4f} {g['recall']:6.4f} {g['f05']:6.4f} "
                f"{g['largest']:>7} | {e['precision']:7.4f} {e['recall']:6.4f}"
            )


def _print_reports(reports: list[dict], t: float) -> None:
    print(f"at similarity {t:.2f} (groups: pairwise precision / recall; pairs: before grouping)")
    print(f"{'set':<18} {'shots':>5} {'P':>7} {'R':>7} {'largest':>7} {'pairs P':>7} {'AP':>7} hardest other")
    for r in reports:
        g = r["groups"]
        print(
            f"{r['set']:<18} {r['shots']:>5} {g['precision']:7.4f} {g['recall']:7.4f} {g['largest']:>7} "
            f"{r['edges']['precision']:7.4f} {r['average_precision']:7.4f} {r['hardest_other_scene']:.3f}"
        )
    print("recall by variant (report_both):", json.dumps(reports[-1]["recall_by_variant"]))


if __name__ == "__main__":
    main()
