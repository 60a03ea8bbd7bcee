"""The quality-aware view sampler."""

from __future__ import annotations

import pytest
import torch

from reiqa.errors import ConfigError
from reiqa.views import QualityViewConfig, QualityViews
from tests.conftest import textured_images

SMALL = QualityViewConfig(patch_size=32, n_aug=5, n_scale=2, margin=4)


def test_stack_shape_range_and_slot_layout() -> None:
    images = textured_images(3, 150, 170)
    out = QualityViews(SMALL)(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 2 * 6, 6, 32, 32)
    assert out.min() >= 0 and out.max() <= 1
    # no zero padding anywhere: no crop is all black
    assert out.flatten(3).amax(dim=-1).min() > 0


def test_same_seed_same_views_and_different_seed_differs() -> None:
    images = [textured_images(1, 140, 160)[0], textured_images(1, 120, 200, seed=1)[0]]  # sizes may differ
    views = QualityViews(SMALL)
    a = views(images, generator=torch.Generator().manual_seed(1))
    b = views(images, generator=torch.Generator().manual_seed(1))
    c = views(images, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _locate(crop: torch.Tensor, image: torch.Tensor) -> tuple[int, int]:
    """Top-left of crop (3, P, P) inside image (3, H, W), by exhaustive search."""
    p = crop.shape[-1]
    windows = image.unfold(1, p, 1).unfold(2, p, 1)  # (3, H-P+1, W-P+1, P, P)
    err = (windows - crop[:, None, None]).abs().sum(dim=(0, 3, 4))
    pos = int(err.argmin())
    assert err.min() < 1e-4
    return divmod(pos, err.shape[1])


@pytest.mark.parametrize("swap", [True, False])
def test_pristine_crops_overlap_in_band_and_swap_exchanges_them_cleanly(swap: bool) -> None:
    cfg = QualityViewConfig(patch_size=32, n_aug=3, n_scale=1, margin=0, swap_crops=swap)
    image = textured_images(1, 120, 120, seed=3)[0]
    for seed in range(5):
        out = QualityViews(cfg)(image[None], generator=torch.Generator().manual_seed(seed))[0]
        query, key = out[0, :3], out[0, 3:]  # slot 0: pristine, full scale; swapped when swap
        qy, qx = _locate(query, image)
        ky, kx = _locate(key, image)
        top, bottom = ((ky, kx), (qy, qx)) if swap else ((qy, qx), (ky, kx))
        dy, dx = bottom[0] - top[0], bottom[1] - top[1]
        assert dy > 0 and dx >= 0  # crop B lies below (and right of) crop A
        overlap = (32 - dy) * (32 - dx) / 32**2
        assert 0.10 <= overlap <= 0.30 + 1e-9


def test_every_version_is_cut_at_the_same_place() -> None:
    cfg = QualityViewConfig(patch_size=32, n_aug=4, n_scale=1, margin=0, swap_crops=False)
    image = textured_images(1, 100, 100, seed=4)[0]
    out = QualityViews(cfg)(image[None], generator=torch.Generator().manual_seed(0))[0]
    # versions of mean_shift-like types differ, but a flat image region stays aligned: compare
    # the pristine query with each version's query through their correlation
    q = out[:, :3].flatten(1)
    q = (q - q.mean(1, keepdim=True)) / q.std(1, keepdim=True)
    corr = (q[0] * q[1:]).mean(1)
    assert (corr > 0.3).all(), corr


def test_small_sources_overlap_more_instead_of_padding() -> None:
    cfg = QualityViewConfig(patch_size=32, n_aug=2, n_scale=2, margin=4)
    image = textured_images(1, 70, 70, seed=5)  # half scale 35 px: room for 3 px offsets only
    out = QualityViews(cfg)(image, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 6, 6, 32, 32)
    assert out.flatten(3).amax(dim=-1).min() > 0  # no zero-padded crop


def test_sources_smaller_than_a_patch_are_upsampled() -> None:
    cfg = QualityViewConfig(patch_size=32, n_aug=2, n_scale=2, margin=0)
    out = QualityViews(cfg)(textured_images(1, 40, 48), generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 6, 6, 32, 32) and out.min() >= 0


def test_compat_reproduces_the_corrupted_swap_and_padding() -> None:
    cfg = QualityViewConfig(patch_size=32, n_aug=3, n_scale=2, compat=True)
    image = textured_images(1, 90, 90, seed=6)  # half scale 45 px < window: zero padding
    out = QualityViews(cfg)(image, generator=torch.Generator().manual_seed(0))[0]
    swapped_full = out[:2]  # versions 0..1 of the full scale are swapped ((3 + 1) // 2 = 2)
    assert swapped_full.min() < 0 or swapped_full.max() > 1  # sums/differences of pixels
    unswapped_full = out[2:4]
    assert unswapped_full.min() >= 0 and unswapped_full.max() <= 1
    half = out[4:]
    assert (half.flatten(3).amax(dim=-1) == 0).any() or (half == 0).float().mean() > 0.05  # padded


def test_two_distortion_composition_runs() -> None:
    cfg = QualityViewConfig(patch_size=32, n_aug=8, n_scale=1, n_distortions=2, margin=0)
    out = QualityViews(cfg)(textured_images(4, 80, 80), generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 9, 6, 32, 32) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patch_size": 4},
        {"n_aug": 27},
        {"n_scale": 3},
        {"min_overlap": 0.4},
        {"region": "huge"},
        {"margin": -1},
    ],
)
def test_bad_config_raises(kwargs) -> None:
    with pytest.raises(ConfigError):
        QualityViewConfig(**kwargs)
