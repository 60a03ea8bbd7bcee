"""Tone curves: brighten (13), darken (14), mean shift (15), contrast (18). Op signature as in
``blur.py``. The official curves are scipy splines through a few points; they reduce to the
closed forms below (a quadratic through 3 points, an odd cubic through 5 symmetric points)."""

from __future__ import annotations

import torch
from torch import Tensor

from reiqa.distortions import _kernels as K
from reiqa.distortions.colorspace import lab_to_rgb, rgb_to_lab


def _bend(x: Tensor, amount: Tensor) -> Tensor:
    """The quadratic through (0, 0), (0.5, 0.5 + amount / 2), (1, 1), clipped to [0, 1]."""
    return (x + 2.0 * amount * x * (1.0 - x)).clamp(0.0, 1.0)


def brighten(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Mix of a brightening curve on RGB (weight 2/3) and on Lab lightness (weight 1/3)."""
    a = values.to(images).view(-1, 1, 1, 1)
    lab = rgb_to_lab(images)
    lightness = _bend(lab[:, :1] / 100.0, a) * 100.0
    via_lab = lab_to_rgb(torch.cat([lightness, lab[:, 1:]], dim=1))
    out = ((2.0 * _bend(images, a) + via_lab) / 3.0).clamp(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def darken(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """The quadratic through (0, 0), (0.5, 0.5 - p / 2), (1, 1) on RGB, clipped."""
    out = _bend(images, -values.to(images).view(-1, 1, 1, 1))
    return K.floor_to_uint8_grid(out) if compat else out


def mean_shift(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """x + a, clipped. Level 2 (a = 0) is the identity."""
    out = (images + values.to(images).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def contrast_curve(x: Tensor, p: Tensor) -> Tensor:
    """The cubic through (0, 0), (0.3, 0.25 - p/4), (0.5, 0.5), (0.7, 0.75 + p/4), (1, 1).

    The points are odd-symmetric about (0.5, 0.5), so the interpolating cubic is
    0.5 + c1 t + c3 t^3 with t = x - 0.5; p > -0.2 raises contrast, p < -0.2 lowers it."""
    c3 = -(0.05 + p / 4.0) / 0.042
    c1 = 1.0 - 0.25 * c3
    t = x - 0.5
    return 0.5 + c1 * t + c3 * t * t * t


def contrast(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """S-shaped (or flattening) contrast curve on RGB, clipped."""
    out = contrast_curve(images, values.to(images).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out
