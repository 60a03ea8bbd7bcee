"""Filtering and resampling primitives shared by the distortion families.

Everything works on (N, C, H, W) float tensors on any device; kernels are built in float64 on the
host once per (size, parameter) and moved to the data's device and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor


def group_by_value(values: Tensor) -> list[tuple[float, Tensor]]:
    """Split a batch by parameter value: [(value, indices)], indices an int64 CPU tensor.

    values: (N,) CPU tensor. Used by ops whose kernel size depends on the level, so that each
    group runs as one batched call."""
    return [(float(v), (values == v).nonzero().flatten()) for v in torch.unique(values)]


# Filtering. On the CPU, torch's depthwise conv2d is 10-20x slower than summing shifted slices
# for these kernel sizes (measured: 53 ms vs 4 ms for a 9-tap pass over a 1024x768 RGB image on
# one core), and an FFT is fastest for wide 2-D kernels; on CUDA conv2d is used.

_FFT_MIN_TAPS = 32  # a 1-D kernel at least this long (or a 2-D one with this many rows) uses the FFT


def _good_fft_size(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def filter2d_replicate(images: Tensor, kernel: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Correlate every channel with one 2-D kernel, edges extended by replication.

    images: (N, C, H, W). kernel: (kh, kw) float64. pad: (left, right, top, bottom), with
    left + right = kw - 1 and top + bottom = kh - 1, so the output keeps the input size."""
    kh, kw = kernel.shape
    h, w = images.shape[-2:]
    padded = F.pad(images, pad, mode="replicate")
    if images.device.type != "cpu":
        weight = kernel.to(images).expand(images.shape[1], 1, kh, kw)
        return F.conv2d(padded, weight, groups=images.shape[1])
    if kh == 1 or kw == 1 or kh * kw <= 25:
        out = torch.zeros_like(images)
        for (a, b), weight in zip(kernel.nonzero().tolist(), kernel[kernel != 0].tolist(), strict=True):
            out.add_(padded[..., a : a + h, b : b + w], alpha=weight)
        return out
    # Circular convolution of the padded image with the flipped kernel; the valid part is the
    # correlation we want, with no wrap-around.
    hp, wp = padded.shape[-2:]
    size = (_good_fft_size(hp), _good_fft_size(wp))
    spectrum = torch.fft.rfft2(padded, s=size)
    kernel_spectrum = torch.fft.rfft2(kernel.flip(0, 1).to(images), s=size)
    full = torch.fft.irfft2(spectrum * kernel_spectrum, s=size)
    return full[..., kh - 1 : kh - 1 + h, kw - 1 : kw - 1 + w].contiguous()


def filter1d_replicate(images: Tensor, kernel: Tensor, dim: int, before: int, after: int) -> Tensor:
    """Correlate along dim (-1 columns, -2 rows) with a 1-D kernel of before + after + 1 taps:
    out[j] = sum_i kernel[i] * in[j - before + i], edges replicated."""
    if dim == -1:
        return filter2d_replicate(images, kernel.view(1, -1), (before, after, 0, 0))
    return filter2d_replicate(images, kernel.view(-1, 1), (0, 0, before, after))


def conv_separable_replicate(images: Tensor, kernel_x: Tensor | None, kernel_y: Tensor | None) -> Tensor:
    """Separable centred correlation with odd 1-D kernels, edges replicated ('nearest').
    Long kernels go through one 2-D FFT instead of two long passes."""
    if (
        images.device.type == "cpu"
        and kernel_x is not None
        and kernel_y is not None
        and max(kernel_x.numel(), kernel_y.numel()) >= _FFT_MIN_TAPS
    ):
        rx, ry = kernel_x.numel() // 2, kernel_y.numel() // 2
        return filter2d_replicate(images, torch.outer(kernel_y, kernel_x), (rx, rx, ry, ry))
    out = images
    if kernel_x is not None:
        r = kernel_x.numel() // 2
        out = filter1d_replicate(out, kernel_x, -1, r, r)
    if kernel_y is not None:
        r = kernel_y.numel() // 2
        out = filter1d_replicate(out, kernel_y, -2, r, r)
    return out


@lru_cache(maxsize=64)
def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> Tensor:
    """Normalised sampled Gaussian, radius round(truncate * sigma) (scipy/scikit-image's rule),
    at least 1. Returns (2r+1,) float64."""
    radius = max(1, int(truncate * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Gaussian blur with replicated edges. images: (N, C, H, W)."""
    k = gaussian_kernel1d(float(sigma), truncate)
    return conv_separable_replicate(images, k, k)


@lru_cache(maxsize=32)
def pil_box_radius_kernel(radius: float) -> Tensor:
    """1-D kernel of one pass of Pillow's box blur with a fractional radius: 2*floor(r)+1 full
    taps plus the fraction on the two outer taps, normalised. Returns (2*floor(r)+3,) float64."""
    whole = int(radius)
    frac = radius - whole
    k = torch.ones(2 * whole + 3, dtype=torch.float64)
    k[0] = k[-1] = frac
    return k / (2 * radius + 1)


def pil_gaussian_radius(sigma: float, passes: int = 3) -> float:
    """Box radius for Pillow's GaussianBlur, which approximates a Gaussian by ``passes`` box
    blurs (extended box filter of Gwosdek et al.)."""
    sigma2 = sigma * sigma / passes
    big_l = math.sqrt(12.0 * sigma2 + 1.0)
    l = math.floor((big_l - 1.0) / 2.0)
    a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2)
    a /= 6 * (sigma2 - (l + 1) * (l + 1))
    return l + a


def pil_box_blur(images: Tensor, radius: float, passes: int = 1, *, quantize: bool = False) -> Tensor:
    """Pillow's BoxBlur (``passes`` = 1) or GaussianBlur (3 passes of its box radius).

    quantize: round to the 8-bit grid after each 1-D pass, as Pillow's uint8 buffers do."""
    k = pil_box_radius_kernel(float(radius))
    out = images
    for _ in range(passes):
        out = conv_separable_replicate(out, k, None)
        if quantize:
            out = round_to_uint8_grid(out)
        out = conv_separable_replicate(out, None, k)
        if quantize:
            out = round_to_uint8_grid(out)
    return out


def pil_gaussian_blur(images: Tensor, sigma: float, *, quantize: bool = False) -> Tensor:
    """Pillow's ``ImageFilter.GaussianBlur(radius=sigma)``."""
    return pil_box_blur(images, pil_gaussian_radius(sigma), passes=3, quantize=quantize)


# --- 8-bit grid -------------------------------------------------------------------------------

_EPS = 1e-4  # keeps x*255 = 127.99999 (float error) from truncating to 127


def round_to_uint8_grid(x: Tensor) -> Tensor:
    """Clip to [0, 1] and round to the nearest of the 256 levels (Pillow's uint8 writes)."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def floor_to_uint8_grid(x: Tensor) -> Tensor:
    """Clip to [0, 1] and truncate to the 8-bit grid, as numpy's ``astype(uint8)`` after ``*255``
    (the official code's conversion)."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + _EPS) / 255.0


# --- Pillow-style resampling ------------------------------------------------------------------


def _bilinear(x: Tensor) -> Tensor:
    return (1.0 - x.abs()).clamp_min(0.0)


def _bicubic(x: Tensor) -> Tensor:
    a = -0.5  # Pillow's bicubic constant
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _sinc(x: Tensor) -> Tensor:
    return torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) / (math.pi * x))


def _lanczos(x: Tensor) -> Tensor:
    return torch.where(x.abs() < 3.0, _sinc(x) * _sinc(x / 3.0), torch.zeros_like(x))


FILTERS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "bilinear": (_bilinear, 1.0),
    "bicubic": (_bicubic, 2.0),
    "lanczos": (_lanczos, 3.0),
}


@lru_cache(maxsize=256)
def resample_matrix(size_in: int, size_out: int, filter_name: str) -> Tensor:
    """(size_out, size_in) float64 matrix of Pillow's antialiased resampling weights: the filter
    support widens by the downscale factor, taps are centred on pixel centres, rows sum to 1."""
    fn, support = FILTERS[filter_name]
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = support * filterscale
    centers = (torch.arange(size_out, dtype=torch.float64) + 0.5) * scale  # (out,)
    xmin = torch.clamp(torch.trunc(centers - support + 0.5), min=0)
    xmax = torch.clamp(torch.trunc(centers + support + 0.5), max=size_in)
    x = torch.arange(size_in, dtype=torch.float64)  # (in,)
    w = fn((x[None, :] - centers[:, None] + 0.5) / filterscale)  # (out, in)
    inside = (x[None, :] >= xmin[:, None]) & (x[None, :] < xmax[:, None])
    w = torch.where(inside, w, torch.zeros_like(w))
    return w / w.sum(dim=1, keepdim=True)


def _resample_pass(images: Tensor, size: tuple[int, int], filter_name: str) -> Tensor:
    """One Pillow-style pass. torch's antialiased bilinear/bicubic is the same computation as
    Pillow's (equal to 1e-15 in float64, checked in the tests) and much faster than a dense
    matrix; Lanczos, which torch lacks, goes through the resampling matrix."""
    if filter_name in ("bilinear", "bicubic"):
        return F.interpolate(images, size=size, mode=filter_name, antialias=True, align_corners=False)
    if size[1] != images.shape[-1]:
        return torch.matmul(images, resample_matrix(images.shape[-1], size[1], filter_name).to(images).T)
    return torch.matmul(resample_matrix(images.shape[-2], size[0], filter_name).to(images), images)


def pil_resize(images: Tensor, size: tuple[int, int], filter_name: str, *, quantize: bool = False) -> Tensor:
    """Resize (N, C, H, W) to size = (h, w) as Pillow does: horizontal pass, then vertical.

    quantize: round to the 8-bit grid after each pass (Pillow's uint8 intermediate)."""
    h_out, w_out = size
    out = images
    if w_out != images.shape[-1]:
        out = _resample_pass(out, (images.shape[-2], w_out), filter_name)  # (N, C, H, w_out)
        if quantize:
            out = round_to_uint8_grid(out)
    if h_out != images.shape[-2]:
        out = _resample_pass(out, (h_out, w_out), filter_name)  # (N, C, h_out, w_out)
        if quantize:
            out = round_to_uint8_grid(out)
    return out


@lru_cache(maxsize=256)
def pil_nearest_indices(size_in: int, size_out: int) -> Tensor:
    """Source indices of Pillow's NEAREST resize, which walks the output accumulating the scale in
    double precision and truncates; reproduced step by step so ties fall the same way."""
    scale = size_in / size_out
    pos = scale * 0.5
    idx = []
    for _ in range(size_out):
        idx.append(min(int(pos), size_in - 1))
        pos += scale
    return torch.tensor(idx, dtype=torch.int64)


def pil_nearest_down_up(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Pillow's NEAREST resize of (N, C, H, W) to size = (h, w) and back to (H, W), as one
    gather through the composed index maps."""
    h, w = images.shape[-2:]
    rows = pil_nearest_indices(h, size[0])[pil_nearest_indices(size[0], h)].to(images.device)
    cols = pil_nearest_indices(w, size[1])[pil_nearest_indices(size[1], w)].to(images.device)
    return images[:, :, rows[:, None], cols[None, :]]


def symmetric_index(index: Tensor, size: int) -> Tensor:
    """Map any integer index into 0..size-1 by mirroring with the edge repeated (numpy's
    'symmetric' pad, scipy's 'reflect' mode): ... b a | a b c | c b ..."""
    period = 2 * size
    index = torch.remainder(index, period)
    return torch.where(index < size, index, period - 1 - index)


def np_gradient(x: Tensor, dim: int) -> Tensor:
    """numpy.gradient along one dim: central differences inside, one-sided at the two edges."""
    n = x.shape[dim]
    if n < 2:
        return torch.zeros_like(x)
    inner = (x.narrow(dim, 2, n - 2) - x.narrow(dim, 0, n - 2)) / 2.0
    first = x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1)
    last = x.narrow(dim, n - 1, 1) - x.narrow(dim, n - 2, 1)
    return torch.cat([first, inner, last], dim=dim)
