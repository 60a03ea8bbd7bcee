"""Resampling: down-and-up resize with bicubic (16), bilinear (23), nearest (24) and Lanczos
(25) filters, and pixelation (20). Op signature as in ``blur.py``. The filters are Pillow's
(antialiased, support widened by the scale factor); compat also rounds to uint8 between passes
as Pillow's buffers do."""

from __future__ import annotations

import torch
from torch import Tensor

from reiqa.distortions import _kernels as K


def _down_up(images: Tensor, values: Tensor, filter_name: str, compat: bool, size_of) -> Tensor:
    h, w = images.shape[-2:]
    out = torch.empty_like(images)
    for value, idx in K.group_by_value(values):
        idx = idx.to(images.device)
        small = size_of(h, w, value)
        if filter_name == "nearest":
            out[idx] = K.pil_nearest_down_up(images[idx], small)
        else:
            down = K.pil_resize(images[idx], small, filter_name, quantize=compat)
            out[idx] = K.pil_resize(down, (h, w), filter_name, quantize=compat)
    return out.clamp_(0.0, 1.0)


def _divided(h: int, w: int, factor: float) -> tuple[int, int]:
    return max(1, int(h / factor)), max(1, int(w / factor))


def resize_bicubic(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Down by the factor f to (int(h/f), int(w/f)), then back up, bicubic (a = -0.5)."""
    return _down_up(images, values, "bicubic", compat, _divided)


def resize_bilinear(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """As ``resize_bicubic`` with the triangle filter."""
    return _down_up(images, values, "bilinear", compat, _divided)


def resize_lanczos(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """As ``resize_bicubic`` with Lanczos-3."""
    return _down_up(images, values, "lanczos", compat, _divided)


def resize_nearest(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """As ``resize_bicubic`` with nearest neighbour both ways."""
    return _down_up(images, values, "nearest", compat, _divided)


def _pixelated(h: int, w: int, p: float) -> tuple[int, int]:
    z = 0.95 - p**0.6
    return max(1, int(z * h)), max(1, int(z * w))


def pixelate(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Nearest neighbour down to z = 0.95 - p^0.6 of the size and back up."""
    return _down_up(images, values, "nearest", compat, _pixelated)
