"""Colour-space conversions in torch, matching scikit-image's definitions.

All functions take and return (N, 3, H, W) float tensors (channel dim -3) on any device. The
official distortions call scikit-image (sRGB, D65 white, 2 degree observer); these follow the same
formulas so that compat mode agrees with it, and they do not clip their input, because the
official ``imsharpenHi`` feeds 0..255 values into ``rgb2lab`` and compat mode reproduces that.
"""

from __future__ import annotations

import torch
from torch import Tensor

# sRGB (linear) -> XYZ, as scikit-image's ``xyz_from_rgb``.
_XYZ_FROM_RGB = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

# ITU-R BT.601 YCbCr with Y in 16..235, as scikit-image's ``ycbcr_from_rgb`` (input in [0, 1]).
_YCBCR_FROM_RGB = torch.tensor(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=torch.float64
)
_RGB_FROM_YCBCR = torch.linalg.inv(_YCBCR_FROM_RGB)
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)


def _matmul_channels(matrix: Tensor, x: Tensor) -> Tensor:
    """Apply a 3x3 colour matrix over the channel dim of (N, 3, H, W)."""
    return torch.einsum("ij,njhw->nihw", matrix.to(x), x)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] -> CIE Lab (L in 0..100). (N, 3, H, W) -> (N, 3, H, W)."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    xyz = _matmul_channels(_XYZ_FROM_RGB, linear) / _WHITE_D65.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0).pow(1 / 3), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE Lab -> sRGB, clipped to [0, 1] as scikit-image's ``lab2rgb`` (negative Z set to 0)."""
    lum, a, b = lab.unbind(-3)
    fy = (lum + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0)], dim=-3)
    xyz = torch.where(f > 0.2068966, f.pow(3), (f - 16.0 / 116.0) / 7.787)
    linear = _matmul_channels(_RGB_FROM_XYZ, xyz * _WHITE_D65.to(lab).view(1, 3, 1, 1))
    gamma = 1.055 * linear.clamp_min(0.0031308).pow(1 / 2.4) - 0.055
    rgb = torch.where(linear > 0.0031308, gamma, linear * 12.92)
    return rgb.clamp(0.0, 1.0)


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] -> HSV with H, S, V in [0, 1], as scikit-image's ``rgb2hsv``."""
    r, g, b = rgb.unbind(-3)
    value, argmax = rgb.max(dim=-3)
    delta = value - rgb.min(dim=-3).values
    # where() keeps the 0/0 of grey pixels out of the result (scikit-image sets S = H = 0 there).
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    sat = torch.where(delta > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), 0.0)
    hue = torch.where(
        argmax == 0,
        (g - b) / safe_delta,
        torch.where(argmax == 1, 2.0 + (b - r) / safe_delta, 4.0 + (r - g) / safe_delta),
    )
    hue = torch.where(delta > 0, torch.remainder(hue / 6.0, 1.0), 0.0)
    return torch.stack([hue, sat, value], dim=-3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV -> RGB, the standard sector formula (scikit-image's ``hsv2rgb``); S outside [0, 1]
    is allowed and gives values outside [0, 1], which callers clip."""
    hue, sat, value = hsv.unbind(-3)
    h6 = hue * 6.0
    sector = torch.floor(h6)
    frac = h6 - sector
    sector = torch.remainder(sector, 6).to(torch.int64)
    p = value * (1.0 - sat)
    q = value * (1.0 - frac * sat)
    t = value * (1.0 - (1.0 - frac) * sat)
    # For each sector, which of (v, t, p, q) goes to R, G, B.
    choices = torch.stack([value, t, p, q], dim=0)  # (4, N, H, W)
    table = torch.tensor(
        [[0, 1, 2], [3, 0, 2], [2, 0, 1], [2, 3, 0], [1, 2, 0], [0, 2, 3]], device=hsv.device
    )  # (6, 3)
    pick = table[sector]  # (N, H, W, 3)
    rgb = torch.gather(choices, 0, pick.permute(3, 0, 1, 2))  # (3, N, H, W)
    return rgb.permute(1, 0, 2, 3)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] -> YCbCr in scikit-image units (Y 16..235, Cb/Cr 16..240)."""
    return _matmul_channels(_YCBCR_FROM_RGB, rgb) + _YCBCR_OFFSET.to(rgb).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; RGB in [0, 1] units, not clipped."""
    return _matmul_channels(_RGB_FROM_YCBCR, ycbcr - _YCBCR_OFFSET.to(ycbcr).view(1, 3, 1, 1))


def rgb_to_gray(rgb: Tensor, weights: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)) -> Tensor:
    """Weighted sum of channels; the default is the BT.601 luma used by the official colour shift.
    (N, 3, H, W) -> (N, 1, H, W)."""
    w = torch.tensor(weights, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=-3, keepdim=True)
