"""Validation of a fine-tuning run, by the project's protocol: each validation image scored whole,
as the scoring pipeline prepares it (decoded and capped by the model's ``FeatureOptions``:
``reiqa.features.iter_prepared``), full and half scale; SRCC and PLCC per database
(``reiqa.evaluate.metrics``); the figure a checkpoint is chosen by is the worse database's SRCC.
And ``recipe``: what the model card of the output records about the run."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reiqa.evaluate import metrics
from reiqa.extras import require
from reiqa.features import FeatureOptions, iter_prepared
from reiqa.io import Failure
from reiqa.train.finetune.config import FinetuneConfig
from reiqa.train.finetune.data import Rows
from reiqa.train.finetune.scorer import Scorer

__all__ = ["PIXELS_PER_FORWARD", "predict_files", "recipe", "validate"]

#: images of one size go through the encoders together, this many pixels at most
PIXELS_PER_FORWARD = 2**21
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@torch.no_grad()
def predict_files(
    scorer: Scorer,
    paths: Sequence[Path],
    options: FeatureOptions,
    *,
    amp: str = "none",
    channels_last: bool = True,
    workers: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, list[Failure]]:
    """The scorer's z-scores of whole image files (NaN for a file that cannot be read, which is
    returned as a Failure), in eval mode."""
    scorer.eval()
    device = scorer.feature_mean.device
    amp_dtype = AMP_DTYPES[amp]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = np.full(len(paths), np.nan)
    failures: list[Failure] = []
    for batch in iter_prepared(paths, options, batch_size=8, workers=workers, progress=progress):
        failures += [item for _, item in batch if isinstance(item, Failure)]
        by_shape: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for i, item in batch:
            if not isinstance(item, Failure):
                by_shape.setdefault(tuple(item.shape), []).append((i, item))
        for group in by_shape.values():
            step = max(1, PIXELS_PER_FORWARD // (group[0][1].shape[-2] * group[0][1].shape[-1]))
            for start in range(0, len(group), step):
                part = group[start : start + step]
                x = torch.stack([im for _, im in part]).to(device).contiguous(memory_format=fmt)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    scores = scorer(x)
                out[[i for i, _ in part]] = scores.float().cpu().numpy()
    return out, failures


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _agreement(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """SRCC, PLCC (raw and after the logistic mapping) of predictions and scores; with fewer than
    5 images the logistic mapping is left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant predictions: NaN, reported as None
        if len(pred) >= 5:
            m = metrics(pred, truth)
            return {k: _finite(m[k]) for k in ("srcc", "plcc", "plcc_logistic")}
        if len(pred) < 2:
            return {"srcc": None, "plcc": None, "plcc_logistic": None}
        stats = require("scipy.stats", "train", "validating a fine-tuning run")
        srcc = stats.spearmanr(pred, truth).statistic
        plcc = stats.pearsonr(pred, truth).statistic if np.ptp(pred) > 0 else math.nan
    return {"srcc": _finite(srcc), "plcc": _finite(plcc), "plcc_logistic": None}


def validate(
    scorer: Scorer,
    rows: Sequence[Rows],
    options: FeatureOptions,
    *,
    step: int,
    epoch: float,
    amp: str = "none",
    channels_last: bool = True,
    workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """The validation record of the scorer as it is: per database SRCC, PLCC, the number of
    images scored and the files that could not be read; ``worst_srcc``, the lowest SRCC (None
    when a database has none)."""
    record: dict[str, Any] = {"step": step, "epoch": epoch, "databases": {}}
    for r in rows:
        paths = [r.table.paths[i] for i in r.val.tolist()]
        pred, failures = predict_files(
            scorer, paths, options, amp=amp, channels_last=channels_last, workers=workers, progress=progress
        )
        ok = np.isfinite(pred)
        record["databases"][r.name] = {
            **_agreement(pred[ok], r.z(r.val)[ok]),
            "n": int(ok.sum()),
            "failed": [f.error for f in failures],
        }
    srccs = [m["srcc"] for m in record["databases"].values()]
    record["worst_srcc"] = None if any(s is None for s in srccs) else min(srccs)
    return record


def recipe(
    cfg: FinetuneConfig, rows: Sequence[Rows], record: dict[str, Any], *, start: str
) -> dict[str, Any]:
    """What the output's model card records: the starting model, the databases (names and row
    counts, never folders), the losses, the crops and schedule, the step and its validation."""
    return {
        "trained_by": "reiqa finetune",
        "from": start,
        "databases": [
            {
                "name": r.name,
                "train_rows": len(r.train),
                "val_rows": len(r.val),
                "mean": r.mean,
                "std": r.std,
                "higher_is_better": r.sign > 0,
            }
            for r in rows
        ],
        "scale": f"{rows[0].name}'s (scores = mean + std x z of its training rows)",
        "losses": {
            "rank": {"weight": cfg.rank_weight, "margin": cfg.rank_margin},
            "mse": {"weight": cfg.mse_weight},
            "degrade": {
                "weight": cfg.degrade_weight,
                "margin": cfg.degrade_margin,
                "images": cfg.degrade_images,
                "levels": [3, 4, 5],
            },
        },
        "crop": cfg.crop,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "lr": {"encoders": cfg.lr_encoder, "head": cfg.lr_head},
        "freeze": list(cfg.freeze),
        "bn": cfg.bn,
        "seed": cfg.seed,
        "step": record["step"],
        "selected_by": "the worse database's validation SRCC",
        "validation": {k: {"srcc": v["srcc"], "plcc": v["plcc"]} for k, v in record["databases"].items()},
    }
