"""Noise: white Gaussian (8), colour-space noise (9), impulse (10), multiplicative (11), and
noise followed by a denoising filter (12). Op signature as in ``blur.py``."""

from __future__ import annotations

import torch
from torch import Tensor

from reiqa.distortions import _kernels as K
from reiqa.distortions.colorspace import rgb_to_ycbcr, ycbcr_to_rgb


def sample_normal_field(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """A standard normal field (3, H, W); the op scales it by the level's standard deviation."""
    return {"noise": torch.randn((3, h, w), generator=generator, device=device)}


def sample_uniform_field(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """One uniform [0, 1) draw per pixel (1, H, W), shared by the three channels."""
    return {"u": torch.rand((1, h, w), generator=generator, device=device)}


def sample_denoise(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """The noise field and which denoiser runs: box blur or Gaussian blur, equally likely."""
    noise = sample_normal_field(h, w, value, generator, device)
    return {**noise, "box": torch.rand((), generator=generator, device=device) < 0.5}


def _std(values: Tensor, like: Tensor) -> Tensor:
    return values.sqrt().to(like).view(-1, 1, 1, 1)


def white_noise(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """x + N(0, var), i.i.d. per pixel and channel, clipped."""
    out = (images + params["noise"].to(images) * _std(values, images)).clamp_(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def color_noise(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """N(0, var) added to Y, Cb and Cr (in units of 255, as the official op), clipped."""
    ycc = rgb_to_ycbcr(images) / 255.0 + params["noise"].to(images) * _std(values, images)
    out = ycbcr_to_rgb(ycc * 255.0).clamp_(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def impulse_noise(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Salt and pepper: each pixel (all channels) turns black with probability p/2 and white
    with probability p/2."""
    u = params["u"].to(images)
    half = (values.to(images) / 2.0).view(-1, 1, 1, 1)
    out = torch.where(u < half, torch.zeros_like(images), images)
    return torch.where(u > 1.0 - half, torch.ones_like(images), out)


def multiplicative_noise(
    images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool
) -> Tensor:
    """x + x * N(0, var) (speckle), clipped."""
    out = (images * (1.0 + params["noise"].to(images) * _std(values, images))).clamp_(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def denoise(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """White noise as type 8, then a fixed denoiser per image: Pillow ``BoxBlur(2)`` or
    ``GaussianBlur(3)``. The blur dominates, so the level barely matters (docs/method.md §1.4.4).
    Default: the same filters in float; compat: Pillow's uint8 buffers."""
    noisy = white_noise(images, values, params, compat=compat)
    box = params["box"].to(images.device)
    out = torch.empty_like(noisy)
    for use_box in (True, False):
        members = (box == use_box).nonzero().flatten()
        if len(members) == 0:
            continue
        if use_box:
            out[members] = K.pil_box_blur(noisy[members], 2.0, quantize=compat)
        else:
            out[members] = K.pil_gaussian_blur(noisy[members], 3.0, quantize=compat)
    return out.clamp_(0.0, 1.0)
