"""Where an image becomes a score: two steps that every scoring path takes.

1. ``prepare`` (``reiqa.features``): a path, an upload's bytes, a tensor, an array or a PIL image
   -> (3, H, W) float32 in [0, 1] within the model's size cap, or a ``Failure`` naming the file
   and the cause (``prepare_or_failure``, for batch jobs).
2. ``score_batch``: prepared items -> one ``ScoreRecord`` each, in order: images of one size
   through the encoders together (``reiqa.features.encode_mixed``, within the engine's pixel
   budget), the regressor, and the finite check (a non-finite score is a failure, never a
   score).

``ReIQA.score``, ``ReIQA.score_files`` (and so ``reiqa score``), the service and the Ray actors
all go through these two, so they give the same numbers and the same errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from torch import Tensor

from reiqa.features import (
    FeatureModel,
    FeatureOptions,
    encode_mixed,
    iter_prepared,
    prepare,
    prepare_or_failure,
)
from reiqa.io import DEFAULT_MAX_PIXELS, Failure
from reiqa.outputs import ScoreRecord
from reiqa.regress import QualityRegressor

__all__ = ["ScoreRecord", "prepare", "prepare_or_failure", "record", "score_batch", "score_files"]


def record(name: str, value: float) -> ScoreRecord:
    """The record of a score: ``value``, or a failure when it is not finite."""
    if not math.isfinite(value):
        return ScoreRecord(name, None, f"{name}: the model gave a non-finite score ({value})")
    return ScoreRecord(name, value, None)


def score_batch(
    features: FeatureModel,
    regressor: QualityRegressor,
    names: Sequence[str],
    items: Sequence[Tensor | Failure],
) -> list[ScoreRecord]:
    """One record per item, in order: the score of each prepared image, the error of each
    Failure. ``names`` label the records (paths as named, upload names)."""
    if len(names) != len(items):
        raise ValueError(f"{len(names)} names for {len(items)} items")
    good = [(i, item) for i, item in enumerate(items) if not isinstance(item, Failure)]
    rows = encode_mixed(features, good, channels_last=True, amp="none")
    scores = regressor.predict([rows[i] for i, _ in good]) if good else []
    values = {i: float(v) for (i, _), v in zip(good, scores, strict=True)}
    return [
        ScoreRecord(name, None, item.error) if isinstance(item, Failure) else record(name, values[i])
        for i, (name, item) in enumerate(zip(names, items, strict=True))
    ]


def score_files(
    features: FeatureModel,
    regressor: QualityRegressor,
    options: FeatureOptions,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[ScoreRecord]:
    """One record per path, in order: the files prepared in batches of ``batch_size`` (decoded in
    ``workers`` processes; ``reiqa.features.iter_prepared``), each batch scored."""
    names = [str(p) for p in paths]
    for batch in iter_prepared(
        paths, options, batch_size=batch_size, workers=workers, progress=progress, max_pixels=max_pixels
    ):
        yield from score_batch(features, regressor, [names[i] for i, _ in batch], [x for _, x in batch])
