"""Image pairs whose order is known without asking anyone: a photo is better than its copies
degraded by the distortion engine, and a stronger level of one distortion is worse than a weaker
one. Their feature differences feed the ranking term of ``reiqa.regress.ranked_ridge``, so that a
regressor fitted on opinion scores does not reward noise or blur it never saw rated.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from reiqa import distortions
from reiqa.atomic import atomic_path
from reiqa.distortions import CATALOG, NUM_LEVELS
from reiqa.features import FeatureModel, encode
from reiqa.io import load_image
from reiqa.resize import center_crop

#: Types whose every level degrades a photo, stronger with the level (the catalogue's monotone
#: types, less those that change tone, saturation or sharpness, which people may prefer).
DEGRADING: tuple[str, ...] = tuple(
    spec.name
    for spec in CATALOG.values()
    if spec.monotone
    and spec.name not in ("brighten", "darken", "hsv_saturation", "lab_saturation", "sharpen")
)


def degradation_pairs(
    model: FeatureModel,
    images: Sequence[Tensor],
    *,
    types: Sequence[str] = DEGRADING,
    crop: int | None = 320,
    generator: torch.Generator,
) -> np.ndarray:
    """Feature differences ``better - worse`` of the chains ``pristine > L0 > ... > L4`` of each
    image and type (levels the catalogue marks as identity left out; adjacent links only).

    images: (3, H, W) float in [0, 1] photos, centre-cropped to ``crop`` (None: whole). Returns
    (m, D) float64, m = images x types x links."""
    specs = [distortions.get(t) for t in types]
    diffs = []
    for image in images:
        x = center_crop(image, crop) if crop else image
        batch = x.unsqueeze(0).expand(NUM_LEVELS, -1, -1, -1)
        versions = [x.unsqueeze(0)]
        for spec in specs:
            versions.append(distortions.apply(batch, spec.id, torch.arange(NUM_LEVELS), generator=generator))
        feats = encode(model, torch.cat(versions).to(model.device)).astype(np.float64)  # (1 + 5T, D)
        for t, spec in enumerate(specs):
            chain = [0] + [
                1 + t * NUM_LEVELS + lv for lv in range(NUM_LEVELS) if lv not in spec.identity_levels
            ]
            diffs += [feats[a] - feats[b] for a, b in itertools.pairwise(chain)]
    return np.stack(diffs) if diffs else np.zeros((0, sum(w for _, w in model.blocks())))


def degradation_pairs_of_files(
    model: FeatureModel,
    paths: Sequence[str | Path],
    *,
    cache: str | Path | None = None,
    types: Sequence[str] = DEGRADING,
    crop: int | None = 320,
    seed: int = 0,
) -> np.ndarray:
    """:func:`degradation_pairs` of image files, drawn from ``seed``. With ``cache`` (a folder) the
    pairs are stored as one ``.npy`` keyed by everything they depend on (the encoder weights, the
    photos' names, the types, the crop, the seed) and read back by the next call."""
    target = None
    if cache is not None:
        key = [
            model.model_id(max_side=None, min_side=None),
            [Path(p).name for p in paths],
            list(types),
            crop,
            seed,
        ]
        target = Path(cache) / f"pairs-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]}.npy"
        if target.is_file():
            return np.load(target)
    images = [load_image(p) for p in paths]
    pairs = degradation_pairs(
        model, images, types=types, crop=crop, generator=torch.Generator().manual_seed(seed)
    )
    if target is not None:
        # an open file: np.save given a path would add '.npy' to the temporary name
        with atomic_path(target) as tmp, open(tmp, "xb") as f:
            np.save(f, pairs)
    return pairs
