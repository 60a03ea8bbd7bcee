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


# f(X/Xn), f(Y/Yn), f(Z/Zn) -> (L + 16, a, b)
_LAB_FROM_F = torch.tensor(
    [[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]], dtype=torch.float64
)
_F_FROM_LAB = torch.linalg.inv(_LAB_FROM_F)


def _matmul_channels(matrix: Tensor, x: Tensor) -> Tensor:
    """Apply a 3x3 colour matrix over the channel dim of (N, 3, H, W). (A batched matmul: on the
    CPU it is 5x faster than the equivalent einsum.)"""
    return torch.matmul(matrix.to(x), x.flatten(-2)).view_as(x)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] -> CIE Lab (L in 0..100). (N, 3, H, W) -> (N, 3, H, W)."""
    linear = (rgb + 0.055).div_(1.055).clamp_min_(0).pow_(2.4)
    torch.where(rgb > 0.04045, linear, rgb / 12.92, out=linear)
    xyz = _matmul_channels(_XYZ_FROM_RGB / _WHITE_D65.view(3, 1), linear)  # X/Xn, Y/Yn, Z/Zn
    f = xyz.clamp_min(0).pow_(1 / 3)
    torch.where(xyz > 0.008856, f, xyz.mul_(7.787).add_(16.0 / 116.0), out=f)
    lab = _matmul_channels(_LAB_FROM_F, f)
    lab[:, 0] -= 16.0
    return lab


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE Lab -> sRGB, clipped to [0, 1] as scikit-image's ``lab2rgb`` (negative Z set to 0)."""
    shifted = lab.clone()
    shifted[:, 0] += 16.0
    f = _matmul_channels(_F_FROM_LAB, shifted)  # fx, fy, fz
    f[:, 2].clamp_min_(0)
    cube = f.pow(3)
    xyz = torch.where(f > 0.2068966, cube, f.sub_(16.0 / 116.0).div_(7.787), out=cube)
    linear = _matmul_channels(_RGB_FROM_XYZ * _WHITE_D65.view(1, 3), xyz)
    gamma = linear.clamp_min(0.0031308).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(linear > 0.0031308, gamma, linear.mul_(12.92), out=gamma).clamp_(0.0, 1.0)


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
