"""The building blocks against the libraries they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color

from reiqa.distortions import _kernels as K
from reiqa.distortions.blur import disk_kernel
from reiqa.distortions.colorspace import (
    lab_to_rgb,
    rgb_to_lab,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from tests.conftest import textured_images


@pytest.fixture
def rgb() -> torch.Tensor:
    x = textured_images(1, 24, 32, seed=5).double()
    x[..., :4, :4] = 0.5  # grey pixels: hue undefined
    return x


def hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def test_lab_matches_scikit_image(rgb) -> None:
    lab = rgb_to_lab(rgb)
    torch.testing.assert_close(lab, chw(color.rgb2lab(hwc(rgb))), atol=1e-6, rtol=0)
    scaled = lab * torch.tensor([1.0, 3.0, 3.0], dtype=lab.dtype).view(1, 3, 1, 1)  # out of gamut
    with pytest.warns(UserWarning, match="negative Z"):  # scikit-image clips Z < 0, as we do
        expected = chw(np.clip(color.lab2rgb(hwc(scaled)), 0, 1))
    torch.testing.assert_close(lab_to_rgb(scaled), expected, atol=1e-6, rtol=0)


def test_lab_accepts_out_of_range_input_as_scikit_image_does(rgb) -> None:
    torch.testing.assert_close(
        rgb_to_lab(rgb * 255), chw(color.rgb2lab(hwc(rgb * 255))), atol=1e-6, rtol=1e-9
    )


def test_hsv_saturation_equals_the_round_trip_through_hsv(rgb) -> None:
    from reiqa.distortions import apply

    for level, factor in enumerate((0.4, 0.2, 0.1, 0.0, -0.4)):
        hsv = color.rgb2hsv(hwc(rgb))
        hsv[..., 1] *= factor
        expected = chw(np.clip(color.hsv2rgb(hsv), 0, 1))
        torch.testing.assert_close(apply(rgb, "hsv_saturation", level), expected, atol=1e-9, rtol=0)


def test_ycbcr_matches_scikit_image_and_round_trips(rgb) -> None:
    ycc = rgb_to_ycbcr(rgb)
    torch.testing.assert_close(ycc, chw(color.rgb2ycbcr(hwc(rgb))), atol=1e-9, rtol=0)
    torch.testing.assert_close(ycbcr_to_rgb(ycc), rgb, atol=1e-9, rtol=0)


@pytest.mark.parametrize(("size_in", "size_out"), [(64, 21), (21, 64), (500, 31), (31, 500), (40, 40)])
@pytest.mark.parametrize("name", ["bilinear", "bicubic", "lanczos"])
def test_resample_matches_pillow(size_in: int, size_out: int, name: str) -> None:
    x = torch.round(textured_images(1, size_in, size_in, seed=6) * 255) / 255
    ours = K.pil_resize(x.double(), (size_out, size_out), name, quantize=True)
    flt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}[name]
    pil = np.asarray(
        Image.fromarray((hwc(x) * 255).round().astype(np.uint8)).resize((size_out, size_out), flt)
    )
    diff = np.abs(hwc(ours) * 255 - pil)
    assert diff.max() <= 1.0 + 1e-6  # Pillow's fixed-point weights round a few values the other way


@pytest.mark.parametrize(("size_in", "size_out"), [(64, 21), (21, 64), (97, 19), (50, 10)])
def test_nearest_indices_match_pillow(size_in: int, size_out: int) -> None:
    ramp = np.tile(np.arange(size_in, dtype=np.uint8), (2, 1))
    pil = np.asarray(Image.fromarray(ramp).resize((size_out, 2), Image.NEAREST))[0]
    assert K.pil_nearest_indices(size_in, size_out).tolist() == pil.tolist()


@pytest.mark.parametrize("name", ["bilinear", "bicubic"])
def test_torch_antialiased_resize_is_pillows_computation(name: str) -> None:
    x = torch.rand(1, 3, 37, 53, dtype=torch.float64)
    for size in ((80, 100), (13, 29), (37, 20)):
        expected = x
        for step in ((37, size[1]), size):  # Pillow: horizontal pass, then vertical
            m_rows = K.resample_matrix(expected.shape[-2], step[0], name)
            m_cols = K.resample_matrix(expected.shape[-1], step[1], name)
            expected = m_rows @ expected @ m_cols.T
        torch.testing.assert_close(K.pil_resize(x, size, name), expected, atol=1e-12, rtol=0)


def test_disk_kernel_is_normalised_and_covers_the_disk() -> None:
    for radius in (1, 2, 4, 6, 8):
        k = disk_kernel(radius)
        assert k.shape == (2 * int(np.ceil(radius - 0.5)) + 1,) * 2
        assert abs(k.sum().item() - 1) < 1e-12
        assert torch.equal(k, k.flip(0)) and torch.equal(k, k.T)
    # the coverage grid the kernel integrates adds up to the disk's area, pi r^2
    crad = 8
    sub = (torch.arange(64, dtype=torch.float64) + 0.5) / 64 - 0.5
    coords = (torch.arange(-crad, crad + 1, dtype=torch.float64)[:, None] + sub).flatten()
    area = ((coords[:, None] ** 2 + coords[None] ** 2) <= 64).double().sum() / 64**2
    assert abs(area.item() - np.pi * 64) < 0.05


def test_gradient_matches_numpy() -> None:
    x = torch.rand(1, 1, 7, 9, dtype=torch.float64)
    for dim, axis in ((-2, 0), (-1, 1)):
        torch.testing.assert_close(
            K.np_gradient(x, dim)[0, 0], torch.from_numpy(np.gradient(x[0, 0].numpy(), axis=axis))
        )


def test_symmetric_index_matches_numpy_symmetric_padding() -> None:
    row = np.arange(5)
    padded = np.pad(row, 7, mode="symmetric")
    assert K.symmetric_index(torch.arange(-7, 12), 5).tolist() == padded.tolist()
