"""The one resize: antialiased bicubic, Pillow's BICUBIC on float tensors, caps that never upscale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reiqa.resize import (
    cap_size,
    center_crop,
    half_scale,
    half_scale_unfiltered,
    resize,
    upscale_to_min_side,
)
from tests.conftest import textured_images


def test_half_scale_is_pillows_bicubic_resize() -> None:
    x = torch.round(textured_images(1, 61, 90) * 255) / 255
    pil = Image.fromarray((x[0].permute(1, 2, 0) * 255).round().byte().numpy()).resize(
        (45, 30), Image.BICUBIC
    )
    ours = half_scale(x, quantize=True)[0].permute(1, 2, 0).mul(255).round().numpy()
    assert np.abs(ours - np.asarray(pil, dtype=np.float64)).max() <= 1.0


def test_cap_size_never_upscales() -> None:
    x = torch.rand(3, 400, 600)
    assert cap_size(x, max_side=300).shape == (3, 200, 300)
    assert cap_size(x, min_side=200).shape == (3, 200, 300)
    assert cap_size(x, max_side=1000).shape == (3, 400, 600)


def test_a_single_image_and_a_batch_resize_alike() -> None:
    x = textured_images(2, 40, 52)
    batch = resize(x, (20, 26))
    assert batch.shape == (2, 3, 20, 26) and batch.min() >= 0 and batch.max() <= 1
    torch.testing.assert_close(resize(x[1], (20, 26)), batch[1])
    torch.testing.assert_close(cap_size(x[0], max_side=26), batch[0])


def test_half_scale_of_a_tiny_image_is_at_least_one_pixel() -> None:
    assert half_scale(torch.rand(1, 3, 1, 5)).shape == (1, 3, 1, 2)


def test_unfiltered_half_scale_is_the_official_training_resize() -> None:
    x = textured_images(1, 32, 48)
    expected = F.interpolate(x, size=(16, 24), mode="bicubic", align_corners=True)
    torch.testing.assert_close(half_scale_unfiltered(x), expected)
    assert not torch.allclose(half_scale_unfiltered(x), half_scale(x))


@pytest.mark.parametrize(("h", "w", "side", "shape"), [(20, 40, 32, (32, 64)), (64, 48, 32, (64, 48))])
def test_upscale_to_min_side(h, w, side, shape) -> None:
    assert upscale_to_min_side(torch.rand(1, 3, h, w), side).shape[-2:] == shape


def _sheet_crop(images, tile):  # the copy sheet.py had before center_crop
    h, w = images.shape[-2:]
    th, tw = min(tile, h), min(tile, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return images[..., top : top + th, left : left + tw]


@pytest.mark.parametrize("lead", [(3,), (2, 3), ()])
@pytest.mark.parametrize(
    ("h", "w", "side"), [(9, 12, 4), (10, 7, 5), (5, 5, 5), (6, 30, 8), (3, 2, 160), (1, 1, 1)]
)
def test_center_crop_is_the_centre_window_of_any_layout(lead, h, w, side) -> None:
    x = torch.arange(float(np.prod([*lead, h, w]))).reshape(*lead, h, w)
    out = center_crop(x, side)
    assert out.shape == (*lead, min(h, side), min(w, side))
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)  # odd margins: the extra row below
    torch.testing.assert_close(out, x[..., top : top + min(h, side), left : left + min(w, side)])
    torch.testing.assert_close(out, _sheet_crop(x, side))
    assert (
        out.data_ptr() >= x.data_ptr() and out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    )


def test_center_crop_refuses_a_side_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        center_crop(torch.rand(3, 4, 4), 0)
