"""Blur and sharpness: Gaussian blur (1), lens blur (2), motion blur (26), sharpen (17).

Each op: images (N, 3, H, W) float in [0, 1]; values (N,) float64 CPU tensor of level values;
params a dict of per-image random draws (leading dim N); returns (N, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from reiqa.distortions import _kernels as K
from reiqa.distortions.colorspace import lab_to_rgb, rgb_to_lab


def gaussian_blur(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Blur with standard deviation ``sigma`` px. Default: a sampled Gaussian (radius 4 sigma);
    compat: Pillow's ``GaussianBlur(radius=sigma)``, three box blurs on uint8 buffers."""
    out = torch.empty_like(images)
    for sigma, idx in K.group_by_value(values):
        idx = idx.to(images.device)
        if compat:
            out[idx] = K.pil_gaussian_blur(images[idx], sigma, quantize=True)
        else:
            out[idx] = K.gaussian_blur(images[idx], sigma)
    return out.clamp_(0.0, 1.0)


@lru_cache(maxsize=16)
def disk_kernel(radius: float, samples: int = 64) -> Tensor:
    """Defocus kernel: the share of each pixel's square covered by a disk of ``radius`` px,
    integrated on a samples x samples grid per pixel, normalised to sum 1. Side 2*ceil(r-0.5)+1,
    as MATLAB's fspecial('disk'). Returns (k, k) float64."""
    crad = math.ceil(radius - 0.5)
    sub = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples - 0.5  # offsets in a pixel
    centers = torch.arange(-crad, crad + 1, dtype=torch.float64)
    coords = (centers[:, None] + sub[None, :]).flatten()  # (k*samples,)
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius**2
    k = 2 * crad + 1
    area = inside.view(k, samples, k, samples).sum(dim=(1, 3)).to(torch.float64)
    return area / area.sum()


def lens_blur(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Convolve with a disk of radius r px, edges replicated (scipy 'nearest'). The kernel is the
    exact pixel coverage of the disk in both modes (the official MATLAB port agrees with it to
    within a few 1e-3 per tap and carries a dead branch); compat truncates to uint8 as the
    official in-place uint8 convolution does."""
    out = torch.empty_like(images)
    for radius, idx in K.group_by_value(values):
        idx = idx.to(images.device)
        kernel = disk_kernel(radius)
        r = kernel.shape[0] // 2
        out[idx] = K.filter2d_replicate(images[idx], kernel, (r, r, r, r))
    out = out.clamp_(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def sample_motion_blur(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """Direction of the motion: vertical or horizontal with equal probability."""
    return {"vertical": torch.rand((), generator=generator, device=device) < 0.5}


def motion_blur(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Average over a line of ``k`` px, vertical or horizontal (``params['vertical']``: (N,) bool).

    The window of an even length runs from -(k/2 - 1) to +k/2 around the pixel, as scipy's
    ``convolve`` places an even kernel. compat also reproduces the official kernel's off-centre
    line (column (k-1)//2 of a k x k kernel), which moves the image by one pixel across the
    motion for even k, and truncates to uint8."""
    out = torch.empty_like(images)
    vertical = params["vertical"].to(images.device)
    for length, idx in K.group_by_value(values):
        k = int(length)
        before, after = (k - 1) // 2, k // 2
        kernel = torch.full((k,), 1.0 / k, dtype=torch.float64)
        idx = idx.to(images.device)
        is_vertical = vertical[idx]
        for direction, dim in ((True, -2), (False, -1)):
            members = idx[is_vertical == direction]
            if len(members) == 0:
                continue
            blurred = K.filter1d_replicate(images[members], kernel, dim, before, after)
            if compat and k % 2 == 0:
                # scipy's convolve of the even k x k kernel reads the next column (row) over.
                across = -1 if dim == -2 else -2
                blurred = torch.cat(
                    [
                        blurred.narrow(across, 1, blurred.shape[across] - 1),
                        blurred.narrow(across, blurred.shape[across] - 1, 1),
                    ],
                    dim=across,
                )
            out[members] = blurred
    out = out.clamp_(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out


def laplacian(x: Tensor) -> Tensor:
    """d2/dy2 + d2/dx2 of (N, 1, H, W), each as numpy.gradient applied twice."""
    return K.np_gradient(K.np_gradient(x, -2), -2) + K.np_gradient(K.np_gradient(x, -1), -1)


def sharpen(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Unsharp lightness: L <- clip(L - k * laplacian(L), 0, 100) in Lab.

    compat reproduces the official defect (docs/method.md §1.4.1): the image enters ``rgb2lab`` in
    0..255 instead of 0..1, so every level gives a colour-shifted, near-saturated image."""
    amount = values.to(images).view(-1, 1, 1, 1)
    lab = rgb_to_lab(images * 255.0 if compat else images)
    lightness = lab[:, :1]
    sharpened = (lightness - amount * laplacian(lightness)).clamp(0.0, 100.0)
    out = lab_to_rgb(torch.cat([sharpened, lab[:, 1:]], dim=1))
    return K.floor_to_uint8_grid(out) if compat else out
