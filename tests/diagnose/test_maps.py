"""Heat maps: crops that cover the photo, scores blended back to its size, a PNG of its aspect."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from reiqa.diagnose.maps import crop_positions, quality_map, write_map
from reiqa.outputs import ScoreRecord
from tests.conftest import textured_images


@pytest.mark.parametrize(("length", "crop"), [(100, 100), (100, 40), (257, 64), (1024, 341), (64, 80)])
def test_crops_cover_the_side_at_most_half_a_crop_apart(length: int, crop: int) -> None:
    starts = crop_positions(length, crop)
    assert starts[0] == 0 and starts[-1] + min(crop, length) == length
    assert all(0 < b - a <= crop / 2 for a, b in itertools.pairwise(starts))


class _Brightness:
    """Scores a crop by its mean value (a stand-in for a model: bright is good)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def score_batch(self, names, items) -> list[ScoreRecord]:
        self.batches.append(len(items))
        return [ScoreRecord(n, float(im.mean()) * 100, None) for n, im in zip(names, items, strict=True)]


def test_the_map_is_the_photos_size_and_low_where_the_scores_are() -> None:
    image = textured_images(1, 120, 200, seed=2)[0]
    image[:, :, :60] *= 0.2  # a dark left part
    model = _Brightness()
    qmap = quality_map(model, image)
    assert model.batches == [len(qmap.ys) * len(qmap.xs)]  # one batch through the encoders
    assert qmap.crop == 64 and qmap.values.shape == (120, 200) and np.isfinite(qmap.values).all()
    assert qmap.values[:, :30].mean() < qmap.values[:, 150:].mean()
    assert qmap.worst()[1] == 0
    lo, hi = float(np.nanmin(qmap.scores)), float(np.nanmax(qmap.scores))
    assert lo - 1e-3 <= qmap.values.min() and qmap.values.max() <= hi + 1e-3  # weighted means


def test_write_map_gives_a_png_of_the_photos_aspect(tmp_path) -> None:
    image = torch.rand(3, 90, 160, generator=torch.Generator().manual_seed(0))
    qmap = quality_map(_Brightness(), image, crop=40)
    path = write_map(
        image, qmap, tmp_path / "sub" / "m.png", title="m.png: blur (0.40)", score_range=(0, 100)
    )
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (800, 450)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.png"]  # no temporary file left
