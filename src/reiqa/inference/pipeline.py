"""Where an image becomes a score: two steps that every scoring path takes.

1. ``prepare`` (``reiqa.features``): a path, an upload's bytes, a tensor, an array or a PIL image
   -> (3, H, W) float32 in [0, 1] within the model's size cap, or a ``Failure`` naming the file
   and the cause (``prepare_or_failure``, for batch jobs).
2. ``score_batch``: prepared items -> one ``ScoreRecord`` each, in order: images of one size
   through the encoders together (``reiqa.features.encode_mixed``, within the engine's pixel
   budget), the regressor, and the finite check (a non-finite score is a failure, never a
   score).

``ReIQA.score``, ``ReIQA.score_files`` (and so ``reiqa score``), the service and the Ray actors
all go through these two, so they give the same numbers and the same errors. ``diagnose_batch``
is ``score_batch`` (the same scores) with the model's diagnosis head on tiles of each image of
the size the head was fitted on (``reiqa diagnose``, ``POST /diagnose``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from reiqa.diagnosis import DiagnosisHead, DiagnosisRecord, tile_positions
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

__all__ = [
    "DiagnosisRecord",
    "ScoreRecord",
    "diagnose_batch",
    "diagnose_files",
    "encoders_for",
    "head_on_tiles",
    "prepare",
    "prepare_or_failure",
    "record",
    "score_batch",
    "score_files",
]


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
    good, rows = _encode(features, names, items)
    scores = regressor.predict(rows) if good else []
    values = {i: float(v) for i, v in zip(good, scores, strict=True)}
    return [
        ScoreRecord(name, None, item.error) if isinstance(item, Failure) else record(name, values[i])
        for i, (name, item) in enumerate(zip(names, items, strict=True))
    ]


def _encode(
    features: FeatureModel, names: Sequence[str], items: Sequence[Tensor | Failure]
) -> tuple[list[int], np.ndarray]:
    """(positions of the images among ``items``, their feature rows (n, D) in that order)."""
    if len(names) != len(items):
        raise ValueError(f"{len(names)} names for {len(items)} items")
    good = [(i, item) for i, item in enumerate(items) if not isinstance(item, Failure)]
    rows = encode_mixed(features, good, channels_last=True, amp="none")
    width = sum(w for _, w in features.blocks())
    return [i for i, _ in good], np.stack([rows[i] for i, _ in good]) if good else np.zeros((0, width))


def encoders_for(features: FeatureModel, blocks: Sequence[str]) -> FeatureModel:
    """The encoders of ``features`` that the feature ``blocks`` need (their roles: 'quality_full'
    needs the quality encoder), and no other: the same modules, engine and device."""
    roles = {b.split("_", 1)[0] for b in blocks}
    if roles == {name.split("_", 1)[0] for name, _ in features.blocks()}:
        return features
    return FeatureModel(
        features.quality if "quality" in roles else None,
        features.content if "content" in roles else None,
        compat=features.compat,
        quality_norm=features.quality_norm.kind,
        content_norm=features.content_norm.kind,
        pooling=features.pooling,
        engine=features.engine,
    ).to(features.device)


def head_on_tiles(
    features: FeatureModel, head: DiagnosisHead, images: Sequence[Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """The head on each image as it was fitted: on tiles of ``head.crop`` px (the image's shorter
    side when smaller; ``reiqa.diagnosis.tile_positions``) through the encoders it reads, the
    tiles' probabilities and severities averaged. Returns ((N, K), (N,))."""
    encoders = encoders_for(features, head.blocks)
    tiles, owner = [], []
    for j, image in enumerate(images):
        h, w = image.shape[-2:]
        side = min(head.crop, h, w)
        for y in tile_positions(h, side):
            tiles += [image[:, y : y + side, x : x + side] for x in tile_positions(w, side)]
        owner += [j] * (len(tiles) - len(owner))
    rows = encode_mixed(encoders, list(enumerate(tiles)), channels_last=True, amp="none")
    width = sum(w for _, w in encoders.blocks())
    matrix = np.stack([rows[i] for i in range(len(tiles))]) if tiles else np.zeros((0, width))
    probabilities, severity = head.predict(matrix, layout=tuple(encoders.blocks()))
    owner_of = np.array(owner, dtype=np.int64)
    counts = np.bincount(owner_of, minlength=len(images))[:, None]
    mean_p = np.zeros((len(images), len(head.classes)))
    np.add.at(mean_p, owner_of, probabilities)
    return mean_p / counts, np.bincount(owner_of, weights=severity, minlength=len(images)) / counts[:, 0]


def diagnose_batch(
    features: FeatureModel,
    regressor: QualityRegressor,
    head: DiagnosisHead,
    names: Sequence[str],
    items: Sequence[Tensor | Failure],
) -> list[DiagnosisRecord]:
    """One diagnosis per item, in order: the score (as :func:`score_batch` gives it), the most
    likely issue, its severity and every issue's probability (:func:`head_on_tiles`); a
    Failure's error, or a non-finite score, as the record's error."""
    good, rows = _encode(features, names, items)
    scores = regressor.predict(rows) if good else np.zeros(0)
    probabilities, severity = head_on_tiles(features, head, [items[i] for i in good])
    at = {i: j for j, i in enumerate(good)}
    out = []
    for i, (name, item) in enumerate(zip(names, items, strict=True)):
        if isinstance(item, Failure):
            out.append(DiagnosisRecord(name, None, item.error))
            continue
        scored, j = record(name, float(scores[at[i]])), at[i]
        if scored.score is None:
            out.append(DiagnosisRecord(name, None, scored.error))
            continue
        p = {c: float(v) for c, v in zip(head.classes, probabilities[j], strict=True)}
        issue = head.classes[int(np.argmax(probabilities[j]))]
        out.append(DiagnosisRecord(name, scored.score, None, issue, float(severity[j]), p))
    return out


def _prepared(
    features: FeatureModel,
    options: FeatureOptions,
    paths: Sequence[str | Path],
    batch_size: int,
    workers: int,
    progress: bool,
    max_pixels: int | None,
) -> Iterator[list[tuple[int, Tensor | Failure]]]:
    """The files prepared in batches (``reiqa.features.iter_prepared``), decoded as far ahead of
    the encoders as their engine's row says."""
    return iter_prepared(
        paths,
        options,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        max_pixels=max_pixels,
        ahead=features.engine.decode_ahead,
    )


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
    for batch in _prepared(features, options, paths, batch_size, workers, progress, max_pixels):
        yield from score_batch(features, regressor, [names[i] for i, _ in batch], [x for _, x in batch])


def diagnose_files(
    features: FeatureModel,
    regressor: QualityRegressor,
    head: DiagnosisHead,
    options: FeatureOptions,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[DiagnosisRecord]:
    """:func:`score_files` with :func:`diagnose_batch`: one diagnosis per path, in order."""
    names = [str(p) for p in paths]
    for batch in _prepared(features, options, paths, batch_size, workers, progress, max_pixels):
        yield from diagnose_batch(
            features, regressor, head, [names[i] for i, _ in batch], [x for _, x in batch]
        )
