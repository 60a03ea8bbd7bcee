"""Colour distortions: colour diffusion (3), colour shift (4), HSV saturation (5), Lab
saturation (6). Op signature as in ``blur.py``."""

from __future__ import annotations

import torch
from torch import Tensor

from reiqa.distortions import _kernels as K
from reiqa.distortions.colorspace import lab_to_rgb, rgb_to_gray, rgb_to_lab


def color_diffusion(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Blur a* and b* with sigma = 1.5 a + 2 (edges replicated, truncated at 4 sigma), multiply
    them by a, keep L (the official op blurs and scales L too, then restores it)."""
    out = torch.empty_like(images)
    for amount, idx in K.group_by_value(values):
        idx = idx.to(images.device)
        lab = rgb_to_lab(images[idx])
        chroma = K.gaussian_blur(lab[:, 1:], 1.5 * amount + 2.0) * amount
        out[idx] = lab_to_rgb(torch.cat([lab[:, :1], chroma], dim=1))
    return K.floor_to_uint8_grid(out) if compat else out


def _minmax(x: Tensor) -> Tensor:
    """Rescale each image of (N, 1, H, W) to [0, 1]; a constant image is left as it is."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), x)


def edge_weight(images: Tensor) -> Tensor:
    """The official colour-shift mask: gradient magnitude of the luma, blurred (sigma 4),
    rescaled, floored at 0.1, rescaled, clipped to its 1st-99th percentiles and rescaled.
    (N, 3, H, W) -> (N, 1, H, W) in [0, 1]."""
    gray = rgb_to_gray(images)
    e = torch.hypot(K.np_gradient(gray, -2), K.np_gradient(gray, -1))
    e = _minmax(K.gaussian_blur(e, 4.0))
    e = _minmax(e.clamp(0.1, 1.0))
    flat = e.flatten(1)
    hi = torch.quantile(flat, 0.99, dim=1).view(-1, 1, 1, 1)
    lo = (1.0 - torch.quantile(1.0 - flat, 0.99, dim=1)).view(-1, 1, 1, 1)
    return _minmax(torch.minimum(torch.maximum(e, lo), hi))


def sample_color_shift(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """Shift (dy, dx) = round(amount * v / |v|), v uniform in [0, 1)^2, as the official draw."""
    v = torch.rand(2, generator=generator, device=device, dtype=torch.float64)
    v = v / v.norm().clamp_min(1e-12)
    return {"shift": torch.round(v * value).to(torch.int64)}


def color_shift(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Move the green channel by ``params['shift']`` (N, 2) px (down, right) where the image has
    edges: G' = e * G_shifted + (1 - e) * G, edges mirrored.

    Default: a true 2-D shift. compat: the official flat ``np.roll`` of the mirror-padded
    channel by dy + dx elements, a horizontal shift with row wrap-around (docs/method.md §1.4.2)."""
    n, _, h, w = images.shape
    shift = params["shift"].to(images.device)
    dy, dx = shift[:, 0].view(n, 1, 1), shift[:, 1].view(n, 1, 1)
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    if compat:
        pad = shift.amax(dim=1).view(n, 1, 1)
        padded_w = w + 2 * pad
        flat = (rows + pad) * padded_w + (cols + pad) - (dy + dx)
        src_rows, src_cols = flat // padded_w - pad, flat % padded_w - pad
    else:
        src_rows, src_cols = rows - dy, cols - dx
    src_rows = K.symmetric_index(src_rows, h).expand(n, h, w)
    src_cols = K.symmetric_index(src_cols, w).expand(n, h, w)
    green = images[:, 1]
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    shifted = green[batch, src_rows, src_cols]
    e = edge_weight(images)[:, 0]
    out = images.clone()
    out[:, 1] = e * shifted + (1.0 - e) * green
    return K.floor_to_uint8_grid(out) if compat else out


def hsv_saturation(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """S <- S * a in HSV (a < 0 inverts the hue direction), then clip.

    For a fixed hue and value, each RGB channel of ``hsv2rgb`` is V * (1 - S * g(H)), linear in
    S; so scaling S by a is x' = V - a (V - x) with V = max(R, G, B), exactly, without the round
    trip through HSV (negative a included, as the sector formula is the same)."""
    value = images.amax(dim=1, keepdim=True)
    out = value - values.to(images).view(-1, 1, 1, 1) * (value - images)
    out = out.clamp_(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def lab_saturation(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """(a*, b*) <- (a*, b*) * k in Lab, then back to RGB (clipped)."""
    lab = rgb_to_lab(images)
    chroma = lab[:, 1:] * values.to(images).view(-1, 1, 1, 1)
    out = lab_to_rgb(torch.cat([lab[:, :1], chroma], dim=1))
    return K.floor_to_uint8_grid(out) if compat else out
