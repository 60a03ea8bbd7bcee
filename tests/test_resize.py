"""The one resize: antialiased bicubic, Pillow's BICUBIC on float tensors, caps that never upscale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reiqa.resize import cap_size, half_scale, half_scale_unfiltered, resize, upscale_to_min_side
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
