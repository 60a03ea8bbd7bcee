"""Content encoders compared inside the default model's features (EfficientNet-Lite0 / Lite1 /
Lite2, ImageNet), on the CLIVE share and a validation part of BIQ2021 Train, with their time.

    .venv/bin/python benchmarks/content_encoders.py --data DATA \\
        --content lite0=LITE0.json --content lite1=LITE1.json [--content lite2@352=LITE2.json] \\
        [--content-side N] [--biq2021 BIQ] [--biq-fit 3000] [--biq-val 1000] [--model default] \\
        [--pooling gap+stages] [--splits 10] [--cache DIR] [--limit N] [--time-images 24] [--out JSON]

DATA holds ``clive/`` (``images/`` and ``mos.csv``); BIQ is a clone of the BIQ2021 repository.
Each ``--content NAME=encoder.json`` is a content encoder written by ``reiqa import-encoder``
(e.g. ``--from efficientnet-lite1``). For each, the feature vector is built as the model
(``--model``, ``reiqa.load``) builds its own: the model's quality encoder and the candidate, each
on the image prepared with the model's size cap and on its half scale, pooled by ``--pooling``
(``gap+stages`` by default; the model's own card may say ``gap``). Features go through
``reiqa.features.extract`` (``--cache``: a feature cache folder, keyed by the weights).

``NAME@SIDE=encoder.json`` (or ``--content-side SIDE`` for every candidate without one) feeds
the content encoder the image downscaled so that its longer side is at most SIDE (antialiased
bicubic, ``reiqa.resize``); its half-scale copy too, where that is longer than SIDE (never for
SIDE >= 250 on these 500-pixel databases, whose half scale stays as it is). The quality encoder
is not affected. This compares a wider encoder at the time per photo of a narrower one.

Measured, as ``reiqa evaluate`` does: the CLIVE share with ``--splits`` random 70/10/20 splits
(seed 0; ridge strength on val by SRCC; median over the test parts); with ``--biq2021``, a ridge
(``QualityRegressor``, strength by CV) fitted on the first ``--biq-fit`` rows of BIQ2021 Train
and tested on the next ``--biq-val``, and the same rows scored by a ridge fitted on all CLIVE.
BIQ2021 Test is never read. Time: ms per photo of the whole feature model (both encoders, both
scales), on the first ``--time-images`` CLIVE photos, candidates interleaved over three rounds
in this one run (median), and its ratio to the first candidate's. ``--limit N``: only the first
N CLIVE images (a quick check of the script, not a measurement).

Prints a table and writes JSON (``--out``, docs/reports/content-encoders.json by default).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import reiqa  # noqa: E402
from reiqa import datasets  # noqa: E402
from reiqa.atomic import write_text_atomic  # noqa: E402
from reiqa.evaluate import evaluate, make_splits, metrics  # noqa: E402
from reiqa.features import FeatureModel, encode, extract  # noqa: E402
from reiqa.models.backbones import InputNorm  # noqa: E402
from reiqa.models.checkpoints import load_encoder  # noqa: E402
from reiqa.regress import QualityRegressor  # noqa: E402
from reiqa.resize import cap_size  # noqa: E402
from reiqa.runtime import tune_allocator  # noqa: E402


class Downscaled(nn.Module):
    """A content backbone fed its input downscaled to a longer side of at most ``side``, then
    normalised (``norm``): the resize works on [0, 1] RGB, so the normalisation moves in here
    and the FeatureModel's content norm is 'none'. ``side`` is a buffer, so it is part of the
    feature model's id (the cache key). Pooling is the backbone's (``set_pooling`` reaches it)."""

    def __init__(self, backbone: nn.Module, side: int, norm: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.norm = InputNorm(norm)
        self.register_buffer("side", torch.tensor(side))

    def stage_ends(self) -> dict[int, int]:
        return self.backbone.stage_ends()

    @property
    def gap_dim(self) -> int:
        return self.backbone.gap_dim

    @property
    def taps(self) -> tuple[int, ...]:
        return self.backbone.taps

    @taps.setter
    def taps(self, value: tuple[int, ...]) -> None:
        self.backbone.taps = value

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    @feature_dim.setter
    def feature_dim(self, value: int) -> None:
        self.backbone.feature_dim = value

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(self.norm(cap_size(x, max_side=int(self.side))))


@dataclass
class Candidate:
    name: str
    encoder: Path
    side: int | None
    features: FeatureModel
    about: dict


def parse_content(spec: str, default_side: int | None) -> tuple[str, Path, int | None]:
    """``NAME=PATH`` or ``NAME@SIDE=PATH`` -> (name, path, side)."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"--content takes NAME=encoder.json (or NAME@SIDE=encoder.json), got {spec!r}")
    side = default_side
    if "@" in name:
        side = int(name.partition("@")[2])
    elif side is not None:
        name = f"{name}@{side}"
    return name, Path(path), side


def build_candidate(model: reiqa.ReIQA, spec: str, default_side: int | None, pooling: str) -> Candidate:
    """The model's quality encoder with the content encoder of ``spec``, as one FeatureModel."""
    name, path, side = parse_content(spec, default_side)
    content, about = load_encoder(path)
    norm = about.input_norm or "imagenet"
    quality = copy.deepcopy(model.features.quality)
    if side is not None:
        content, norm = Downscaled(content, side, norm), "none"
    features = FeatureModel(
        quality,
        content,
        compat=model.features.compat,
        quality_norm=model.features.quality_norm.kind,
        content_norm=norm,
        pooling=pooling,
    )
    info = {
        "arch": about.arch,
        "source_file": about.source_file,
        "content_side": side,
        "content_params": sum(p.numel() for p in content.parameters()),
        "width": sum(w for _, w in features.blocks()),
    }
    return Candidate(name, path, side, features, info)


def ms_per_image(candidates: list[Candidate], images: list[Tensor], rounds: int = 3) -> list[float]:
    """Median over ``rounds`` of each candidate's ms per image (one image per forward, as the
    model scores), the candidates interleaved so that a busy machine slows them alike."""
    times: list[list[float]] = [[] for _ in candidates]
    for c in candidates:
        c.features.to(memory_format=torch.channels_last)
        encode(c.features, images[0][None])  # warm-up
    for _ in range(rounds):
        for i, c in enumerate(candidates):
            start = time.perf_counter()
            for image in images:
                encode(c.features, image[None])
            times[i].append((time.perf_counter() - start) / len(images) * 1000)
    return [float(np.median(t)) for t in times]


def features_of(c: Candidate, paths: list[Path], model: reiqa.ReIQA, cache: Path | None) -> np.ndarray:
    print(f"{c.name}: features of {len(paths)} images", flush=True)
    table = extract(
        c.features,
        paths,
        max_side=model.options.max_side,
        min_side=model.options.min_side,
        cache=cache,
    )
    if table.failures:
        raise SystemExit(f"{c.name}: unreadable images, e.g. {table.failures[:3]}")
    return table.features


def fractions(n: int) -> tuple[float, float, float]:
    """70/10/20, or 80/0/20 (ridge strength by CV inside train) when the val part would hold
    fewer than 3 images (a ``--limit`` check)."""
    return (0.7, 0.1, 0.2) if int(0.1 * n) >= 3 else (0.8, 0.0, 0.2)


def _fit_test(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    return metrics(QualityRegressor().fit(x_fit, y_fit).predict(x_test), y_test)["srcc"]


def measure(c: Candidate, args, model, clive, biq) -> dict:
    """CLIVE share summary, and the BIQ2021 validation figures when ``biq`` is given."""
    paths, mos = clive
    x = features_of(c, paths, model, args.cache)
    splits = make_splits(len(paths), n_splits=args.splits, fractions=fractions(len(paths)), seed=0)
    summary = evaluate(x, mos, splits, name=c.name).summary()
    result = {"srcc": summary["srcc"], "plcc": summary["plcc"]}
    if biq is not None:
        biq_paths, biq_mos = biq
        xb = features_of(c, biq_paths, model, args.cache)
        fit, val = slice(0, args.biq_fit), slice(args.biq_fit, None)
        result["biq2021_val_srcc"] = _fit_test(xb[fit], biq_mos[fit], xb[val], biq_mos[val])
        result["clive_to_biq2021_val_srcc"] = _fit_test(x, mos, xb[val], biq_mos[val])
    return result


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--content", action="append", required=True, help="NAME[@SIDE]=encoder.json (repeat)")
    ap.add_argument("--content-side", type=int, default=None)
    ap.add_argument("--model", default="default")
    ap.add_argument("--pooling", default="gap+stages")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None, help="only the first N CLIVE images (a quick check)")
    ap.add_argument("--biq2021", type=Path, default=None)
    ap.add_argument("--biq-fit", type=int, default=3000)
    ap.add_argument("--biq-val", type=int, default=1000)
    ap.add_argument("--time-images", type=int, default=24)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "content-encoders.json")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    tune_allocator()
    model = reiqa.load(args.model)
    candidates = [build_candidate(model, spec, args.content_side, args.pooling) for spec in args.content]
    labels = datasets.load("clive", args.data / "clive")
    clive = (list(labels.paths)[: args.limit], np.asarray(labels.scores)[: args.limit])
    biq = None
    if args.biq2021 is not None:
        table = datasets.load("biq2021", args.biq2021)
        train = table.split_indices("train")[: args.biq_fit + args.biq_val]
        biq = ([table.paths[i] for i in train], np.asarray(table.scores)[train])
    images = [model.prepare(str(p)) for p in clive[0][: args.time_images]]
    times = ms_per_image(candidates, images)
    print("ms per photo: " + ", ".join(f"{c.name} {t:.1f}" for c, t in zip(candidates, times, strict=True)))
    results = {}
    row = "{:<12} {:<20} {:>6} {:>9} {:>6} {:>14} {:>14} {:>8} {:>10}"
    print(
        row.format(
            "content",
            "arch",
            "width",
            "ms/photo",
            "ratio",
            "CLIVE SRCC",
            "CLIVE PLCC",
            "BIQ val",
            "CLIVE->BIQ",
        )
    )
    for c, ms in zip(candidates, times, strict=True):
        result = {
            **c.about,
            "ms_per_photo": ms,
            "time_ratio": ms / times[0],
            **measure(c, args, model, clive, biq),
        }
        results[c.name] = result
        cells = [f"{result[k]['median']:.3f} ± {result[k]['std']:.3f}" for k in ("srcc", "plcc")]
        more = [
            f"{result.get(k, float('nan')):.3f}" for k in ("biq2021_val_srcc", "clive_to_biq2021_val_srcc")
        ]
        print(
            row.format(
                c.name, c.about["arch"], c.about["width"], f"{ms:.1f}", f"{ms / times[0]:.2f}", *cells, *more
            )
        )
    report = {
        "protocol": f"CLIVE share ({len(clive[0])} images), {args.splits} random "
        + (
            "70/10/20 splits (seed 0), ridge strength on val by SRCC"
            if fractions(len(clive[0]))[1]
            else "80/0/20 splits (seed 0; too few images for a val part), ridge strength by CV in train"
        )
        + ", median and std over the test parts"
        + (
            f"; BIQ2021 validation: ridge by 5-fold CV on the first {args.biq_fit} rows of Train, SRCC on "
            f"the next {args.biq_val} (Test not read); CLIVE->BIQ: fitted on all CLIVE, same rows"
            if biq is not None
            else ""
        ),
        "features": f"quality encoder of {model.name} + each content encoder, full and half scale, "
        f"pooling {args.pooling}, max_side {model.options.max_side}",
        "timing": f"ms per photo of the whole feature model, first {len(images)} CLIVE photos one per "
        f"forward, median of 3 interleaved rounds, torch threads: {torch.get_num_threads()}",
        "model": model.name,
        "model_id": model.model_id,
        "results": results,
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")  # the folder is made if missing
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
