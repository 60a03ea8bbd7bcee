"""The one image resize of reiqa: antialiased bicubic, clipped to [0, 1].

Antialiased bicubic (``torch.nn.functional.interpolate(..., antialias=True)``) computes what
Pillow's ``Image.resize(BICUBIC)`` computes, on float tensors, batched, on any device. Every resize
of whole images outside the distortion catalogue goes through :func:`resize`: the half scale of
features and training views, the size caps of scoring and training sources, the upscale of training
crops that are too small. (The resizing distortion types are part of the catalogue.)
:func:`half_scale_unfiltered` is the official training pipeline's half scale, kept only for
``compat=True`` views (docs/method.md §1.7). :func:`center_crop` cuts the centre window of
contact sheets and of the ranking pairs' photos.

All functions take (3, H, W) or (N, 3, H, W) float images in [0, 1] and return the same layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cap_size", "center_crop", "half_scale", "half_scale_unfiltered", "resize", "upscale_to_min_side"]


def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Antialiased bicubic resize to ``size`` (H, W), clipped to [0, 1] (bicubic overshoots at
    edges)."""
    batch = images if images.ndim == 4 else images[None]
    out = F.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(
        0.0, 1.0
    )
    return out if images.ndim == 4 else out[0]


def half_scale(images: Tensor, *, quantize: bool = False) -> Tensor:
    """(…, H, W) -> (…, H // 2, W // 2) (at least 1 x 1). ``quantize`` rounds the result to the
    8-bit grid, as the official demos' PIL image is."""
    h, w = images.shape[-2:]
    half = resize(images, (max(1, h // 2), max(1, w // 2)))
    return torch.round(half * 255.0) / 255.0 if quantize else half


def half_scale_unfiltered(images: Tensor) -> Tensor:
    """The official training pipeline's half scale: bicubic with ``align_corners=True``, no
    antialiasing, not clipped. (N, 3, H, W) only."""
    h, w = images.shape[-2:]
    return F.interpolate(images, size=(h // 2, w // 2), mode="bicubic", align_corners=True)


def cap_size(images: Tensor, *, max_side: int | None = None, min_side: int | None = None) -> Tensor:
    """Downscale so that the longer side is <= ``max_side`` and, if given, the shorter side is
    <= ``min_side`` (the common SPAQ practice is min_side=512). Never upscales; an image within
    both limits is returned as it is."""
    h, w = images.shape[-2:]
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(h, w))
    if min_side is not None:
        scale = min(scale, min_side / min(h, w))
    if scale >= 1.0:
        return images
    return resize(images, (max(1, round(h * scale)), max(1, round(w * scale))))


def upscale_to_min_side(images: Tensor, side: int) -> Tensor:
    """Upscale so that both sides are >= ``side``, keeping the aspect ratio; images already that
    large are returned as they are."""
    h, w = images.shape[-2:]
    if h >= side and w >= side:
        return images
    scale = side / min(h, w)
    return resize(images, (max(side, round(h * scale)), max(side, round(w * scale))))


def center_crop(images: Tensor, side: int) -> Tensor:
    """The centre ``side`` x ``side`` window of (…, H, W) images (any leading dims), a view.

    A side shorter than ``side`` is kept whole, so the result is min(H, side) x min(W, side).
    When the margin is odd, the extra row (column) is left below (right of) the window: the
    window starts at (H - side) // 2. Nothing is resized.

    Raises:
        ValueError: ``side`` < 1.
    """
    if side < 1:
        raise ValueError(f"center_crop: side must be at least 1, got {side}")
    h, w = images.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return images[..., top : top + side, left : left + side]
