"""Degradation pairs: one difference per link of each chain, better minus worse."""

from __future__ import annotations

import numpy as np
import torch

from reiqa.distortions import NUM_LEVELS
from reiqa.features import FeatureModel, encode
from reiqa.models.backbones import build_backbone
from reiqa.ranking import DEGRADING, degradation_pairs
from tests.conftest import textured_images


def test_pairs_are_the_links_of_each_chain() -> None:
    torch.manual_seed(0)
    model = FeatureModel(build_backbone("resnet18"), None)
    images = list(textured_images(2, 40, 48))
    types = ("gaussian_blur", "white_noise")  # gaussian blur's level 0 is identity: 4 links, noise 5
    pairs = degradation_pairs(model, images, types=types, crop=32, generator=torch.Generator().manual_seed(1))
    assert pairs.shape == (2 * (4 + 5), 1024)
    # the first link of the noise chain: pristine (cropped) minus noise level 0
    from reiqa import distortions

    x = images[0][..., 4:36, 8:40].unsqueeze(0)
    g = torch.Generator().manual_seed(1)
    distortions.apply(
        x.expand(NUM_LEVELS, -1, -1, -1), "gaussian_blur", torch.arange(NUM_LEVELS), generator=g
    )
    noisy = distortions.apply(
        x.expand(NUM_LEVELS, -1, -1, -1), "white_noise", torch.arange(NUM_LEVELS), generator=g
    )
    expected = encode(model, x)[0] - encode(model, noisy[:1])[0]
    np.testing.assert_allclose(pairs[4], expected, atol=1e-4)


def test_the_degrading_types_are_monotone_and_leave_out_taste() -> None:
    assert "white_noise" in DEGRADING and "motion_blur" in DEGRADING
    assert not {"sharpen", "brighten", "contrast", "denoise"} & set(DEGRADING)


def test_pairs_of_files_are_cached_by_what_they_depend_on(tmp_path, monkeypatch) -> None:
    from reiqa import ranking
    from reiqa.io import save_image

    torch.manual_seed(0)
    model = FeatureModel(build_backbone("resnet18"), None)
    files = [save_image(im, tmp_path / f"{i}.png") for i, im in enumerate(textured_images(2, 40, 40))]
    first = ranking.degradation_pairs_of_files(
        model, files, cache=tmp_path / "cache", types=("white_noise",), crop=32
    )
    assert first.shape == (2 * 5, 1024) and len(list((tmp_path / "cache").glob("pairs-*.npy"))) == 1
    monkeypatch.setattr(ranking, "degradation_pairs", lambda *a, **k: 1 / 0)  # a second call must not compute
    np.testing.assert_array_equal(
        ranking.degradation_pairs_of_files(
            model, files, cache=tmp_path / "cache", types=("white_noise",), crop=32
        ),
        first,
    )
    monkeypatch.undo()
    other = ranking.degradation_pairs_of_files(
        model, files, cache=tmp_path / "cache", types=("jpeg",), crop=32
    )
    assert len(list((tmp_path / "cache").glob("pairs-*.npy"))) == 2 and not np.array_equal(other, first)
