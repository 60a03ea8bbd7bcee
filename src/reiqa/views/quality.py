"""Training views.

Quality-aware views (Re-IQA, docs/method.md §1.2-1.8): every image becomes 1 pristine + ``n_aug``
distorted versions at ``n_scale`` scales; each (version, scale) is its own MoCo instance whose
two views are partly overlapping crops of that same distorted image.

"We ... generate ... two overlapping crops of each distorted image as positives" (Saha et al.,
CVPR 2023, https://arxiv.org/abs/2304.00451).

How a batch is built (default):

1. Per image, the crop offsets are drawn first, then a region is cut out at a random place:
   just large enough for both crop pairs (the half-scale pair covers twice its size at full
   resolution) plus a margin of context for the spatial filters. ``region="max"`` cuts the
   largest region any draw needs instead, so that images of the same (large enough) size share
   one shape and are distorted in one call: better on a GPU, more pixels on a CPU.
2. The regions of all images with the same region shape are distorted in one batched call to
   :func:`reiqa.distortions.apply`, on the device of the images.
3. The half scale is the distorted region downsampled by 2 with antialiased bicubic (the filter
   inference uses), so both scales show the same distortion realisation, as in the official code.
4. Per image and scale, one window location and one crop offset are drawn; every version is cut
   at the same place (as the official code does). Crop A is the window's top-left P x P, crop B
   is offset by (y, x). Half the instances swap A and B (the paper's intra-pair swap).

``compat=True`` follows the official order instead: the whole image is distorted, the half scale
is a non-antialiased bicubic resize, windows that do not fit are zero-padded centre crops, and
the swap uses the official in-place arithmetic on overlapping views, which corrupts the swapped
crops (docs/method.md §1.6). Use it only to reproduce the released checkpoints' training data.

Small sources (default): a window never leaves the image. When a scale is too small for the
drawn offset, the offset is capped at the room available and the other offset is redrawn so
that the overlap stays in [min_overlap, max_overlap] where the room allows; crops of very small
sources therefore overlap more than ``max_overlap``. A scale whose side is below P is upsampled
(antialiased bicubic) to P first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reiqa import distortions
from reiqa.errors import ConfigError
from reiqa.resize import half_scale, half_scale_unfiltered, upscale_to_min_side

NUM_TYPES = len(distortions.CATALOG)


@dataclass(frozen=True)
class QualityViewConfig:
    """Parameters of the quality-aware view sampler (paper README values by default)."""

    patch_size: int = 160
    n_aug: int = 11
    n_scale: int = 2
    n_distortions: int = 1
    swap_crops: bool = True
    min_overlap: float = 0.10
    max_overlap: float = 0.30
    margin: int = 16
    region: str = "fit"
    compat: bool = False

    def __post_init__(self) -> None:
        if self.patch_size < 8:
            raise ConfigError(f"patch_size must be >= 8, got {self.patch_size}")
        if not 0 <= self.n_aug <= NUM_TYPES:
            raise ConfigError(f"n_aug must be in 0..{NUM_TYPES} (distinct types), got {self.n_aug}")
        if self.n_scale not in (1, 2):
            raise ConfigError(f"n_scale must be 1 or 2, got {self.n_scale}")
        if self.n_distortions not in (1, 2):
            raise ConfigError(f"n_distortions must be 1 or 2, got {self.n_distortions}")
        if not 0 < self.min_overlap < self.max_overlap < 1:
            raise ConfigError(
                f"need 0 < min_overlap < max_overlap < 1, got {self.min_overlap}, {self.max_overlap}"
            )
        if self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin}")
        if self.region not in ("fit", "max"):
            raise ConfigError(f"region must be 'fit' or 'max', got {self.region!r}")

    @property
    def versions(self) -> int:
        return self.n_aug + 1

    @property
    def instances(self) -> int:
        """MoCo instances per image: (versions) x (scales)."""
        return self.versions * self.n_scale

    @property
    def max_offset(self) -> int:
        """Largest vertical crop offset the official draw gives: ceil(P (1 - min_overlap)) - 1."""
        return math.ceil(self.patch_size * (1 - self.min_overlap)) - 1

    @property
    def region_size(self) -> int:
        """Side of the region distorted per image, at full resolution."""
        window = self.patch_size + self.max_offset
        return window * (2 if self.n_scale == 2 else 1) + 2 * self.margin


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform int in [low, high) (high > low) drawn on the CPU generator."""
    return int(torch.randint(low, high, (1,), generator=generator))


def _official_offsets(p: int, lo: float, hi: float, generator: torch.Generator | None) -> tuple[int, int]:
    """The official draw: y in [P(1-hi), P(1-lo)), then x so that the overlap area
    (P - y)(P - x) / P^2 lies in (lo, hi]."""
    y = _randint(int(p * (1 - hi)), int(p * (1 - lo)), generator)
    x_lo = max(0.0, ((1 - hi) * p * p - p * y) / (p - y))
    x_hi = max(0.0, ((1 - lo) * p * p - p * y) / (p - y))
    x = _randint(int(x_lo), max(int(x_hi), int(x_lo) + 1), generator)
    return y, x


def _fit_offsets(
    y: int, x: int, room_y: int, room_x: int, cfg: QualityViewConfig, generator: torch.Generator | None
) -> tuple[int, int]:
    """Cap (y, x) at the room a small source leaves and redraw x to keep the overlap in band."""
    if y <= room_y and x <= room_x:
        return y, x
    p = cfg.patch_size
    y = min(y, room_y)
    # x that keeps (P - y)(P - x) / P^2 in [lo, hi], clipped to the room.
    x_lo = max(0, math.ceil(p - cfg.max_overlap * p * p / (p - y)))
    x_hi = min(room_x, math.floor(p - cfg.min_overlap * p * p / (p - y)))
    x = _randint(x_lo, x_hi + 1, generator) if x_lo <= x_hi else min(room_x, max(x_lo, 0))
    return y, min(x, room_x)


def _center_crop_padded(images: Tensor, size: int) -> Tensor:
    """torchvision's CenterCrop on a too-small image: zero padding around it."""
    h, w = images.shape[-2:]
    pad_h, pad_w = max(size - h, 0), max(size - w, 0)
    padded = F.pad(images, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    ph, pw = padded.shape[-2:]
    top, left = round((ph - size) / 2.0), round((pw - size) / 2.0)
    return padded[..., top : top + size, left : left + size]


@dataclass(frozen=True)
class _Plan:
    types: Tensor  # (n_aug,) int64 ids
    levels: Tensor  # (n_aug,) first-pass levels
    second_types: Tensor  # (n_aug,) ids of the composed second distortion, 0 = none
    second_levels: Tensor  # (n_aug,)
    offsets: tuple[tuple[int, int], ...]  # (y, x) of crop B from crop A, per scale


def _draw_plan(cfg: QualityViewConfig, generator: torch.Generator | None) -> _Plan:
    perm = torch.randperm(NUM_TYPES, generator=generator) + 1
    types = perm[: cfg.n_aug]
    levels = torch.randint(0, 5, (cfg.n_aug,), generator=generator)
    second_types = torch.zeros(cfg.n_aug, dtype=torch.int64)
    second_levels = torch.zeros(cfg.n_aug, dtype=torch.int64)
    if cfg.n_distortions > 1:
        for i in range(cfg.n_aug):
            j = _randint(0, NUM_TYPES, generator)
            if float(torch.rand(1, generator=generator)) < 0.1:
                total = _randint(0, 5, generator)
                second_levels[i] = _randint(0, total + 1, generator)
                levels[i] = total - second_levels[i]
                second_types[i] = perm[j]
    offsets = tuple(
        _official_offsets(cfg.patch_size, cfg.min_overlap, cfg.max_overlap, generator)
        for _ in range(cfg.n_scale)
    )
    return _Plan(types, levels, second_types, second_levels, offsets)


class QualityViews:
    """Builds quality-aware view stacks for a batch of images.

    Call with a list of (3, H, W) float images in [0, 1] (sizes may differ; same device) or an
    (N, 3, H, W) tensor, and a generator. Returns (N, n_scale * (n_aug + 1), 6, P, P) float:
    slot s < n_aug + 1 is full-scale version s (0 = pristine), slot n_aug + 1 + s its half-scale
    copy; channels 0-2 are the query crop and 3-5 the key crop, in [0, 1], not normalised.
    """

    def __init__(self, config: QualityViewConfig) -> None:
        self.cfg = config

    def __call__(self, images: Tensor | list[Tensor], *, generator: torch.Generator | None = None) -> Tensor:
        cfg = self.cfg
        images = list(images.unbind(0)) if isinstance(images, Tensor) else list(images)
        if not images:
            raise ValueError("no images given")
        plans = [_draw_plan(cfg, generator) for _ in images]
        regions = [self._region(img, plan, generator) for img, plan in zip(images, plans, strict=True)]
        stacks = self._distort(regions, plans, generator)
        p = cfg.patch_size
        out = torch.empty(len(images), cfg.instances, 6, p, p, dtype=images[0].dtype, device=images[0].device)
        for b, (stack, plan, (_, inner)) in enumerate(zip(stacks, plans, regions, strict=True)):
            self._crops(stack, plan.offsets, inner, generator, out=out[b])
        return out

    def _region(
        self, image: Tensor, plan: _Plan, generator: torch.Generator | None
    ) -> tuple[Tensor, tuple[bool, bool]]:
        """The part of the image that gets distorted, and whether it is strictly inside the image
        along (rows, cols), i.e. whether its borders need the margin."""
        cfg = self.cfg
        if cfg.compat:
            return image, (False, False)
        h, w = image.shape[-2:]
        if cfg.region == "max":
            need_h = need_w = cfg.region_size
        else:  # both pairs, each at full resolution, plus the margin
            p = cfg.patch_size
            spans = [((p + y) * 2**s, (p + x) * 2**s) for s, (y, x) in enumerate(plan.offsets)]
            need_h = max(a for a, _ in spans) + 2 * cfg.margin
            need_w = max(b for _, b in spans) + 2 * cfg.margin
        rh, rw = min(need_h, h), min(need_w, w)
        top = _randint(0, h - rh + 1, generator)
        left = _randint(0, w - rw + 1, generator)
        return image[:, top : top + rh, left : left + rw], (rh < h, rw < w)

    def _distort(
        self,
        regions: list[tuple[Tensor, tuple[bool, bool]]],
        plans: list[_Plan],
        generator: torch.Generator | None,
    ) -> list[Tensor]:
        """(versions, 3, h, w) per image: pristine first, then the n_aug distorted versions.
        Images whose regions share a shape are distorted in one call, written in place into a
        (versions, images, 3, h, w) buffer."""
        cfg = self.cfg
        out: list[Tensor] = [regions[0][0]] * len(regions)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (region, _) in enumerate(regions):
            by_shape.setdefault(tuple(region.shape), []).append(i)
        for members in by_shape.values():
            base = torch.stack([regions[i][0] for i in members])  # (G, 3, h, w)
            if cfg.compat:  # the official pipeline only ever sees 8-bit images
                base = distortions.round_to_uint8_grid(base)
            g = len(members)
            buffer = torch.empty(cfg.versions, g, *base.shape[1:], dtype=base.dtype, device=base.device)
            buffer[0] = base
            if cfg.n_aug:
                distorted = buffer[1:].view(cfg.n_aug * g, *base.shape[1:])  # version-major
                types = torch.stack([plans[i].types for i in members], dim=1).flatten()
                levels = torch.stack([plans[i].levels for i in members], dim=1).flatten()
                batch = base.repeat(cfg.n_aug, 1, 1, 1)
                distortions.apply(batch, types, levels, generator=generator, compat=cfg.compat, out=distorted)
                second = torch.stack([plans[i].second_types for i in members], dim=1).flatten()
                if bool((second > 0).any()):
                    idx = (second > 0).nonzero().flatten()
                    second_levels = torch.stack([plans[i].second_levels for i in members], dim=1).flatten()
                    dev_idx = idx.to(distorted.device)
                    distorted[dev_idx] = distortions.apply(
                        distorted[dev_idx],
                        second[idx],
                        second_levels[idx],
                        generator=generator,
                        compat=cfg.compat,
                    )
            for k, i in enumerate(members):
                out[i] = buffer[:, k]
        return out

    def _crops(
        self,
        stack: Tensor,
        offsets: tuple[tuple[int, int], ...],
        inner: tuple[bool, bool],
        generator: torch.Generator | None,
        *,
        out: Tensor,
    ) -> None:
        """Cut the crop pairs of every version and scale of one image into out
        (instances, 6, P, P)."""
        cfg = self.cfg
        p = cfg.patch_size
        v = cfg.versions
        swap = v // 2  # the official (n_aug + 1) // 2
        scales = (
            [stack]
            if cfg.n_scale == 1
            else [stack, (half_scale_unfiltered(stack) if cfg.compat else half_scale(stack))]
        )
        for s, views in enumerate(scales):
            y, x = offsets[s]
            slots = out[s * v : (s + 1) * v]
            swapped = slice(0, swap) if s == 0 else slice(swap, None)
            kept = slice(swap, None) if s == 0 else slice(0, swap)
            if cfg.compat:
                a, b = self._compat_pair(views, y, x, generator)
                if cfg.swap_crops:  # the official in-place arithmetic on overlapping views
                    a[swapped] = a[swapped] + b[swapped]
                    b[swapped] = a[swapped] - b[swapped]
                    a[swapped] = a[swapped] - b[swapped]
                slots[:, :3], slots[:, 3:] = a, b
                continue
            margin = cfg.margin // (2**s)
            a, b = self._pair(upscale_to_min_side(views, p), y, x, margin, inner, generator)
            if not cfg.swap_crops:
                kept = slice(None)
            slots[kept, :3], slots[kept, 3:] = a[kept], b[kept]
            if cfg.swap_crops:
                slots[swapped, :3], slots[swapped, 3:] = b[swapped], a[swapped]

    def _compat_pair(
        self, views: Tensor, y: int, x: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        p = self.cfg.patch_size
        side = p + max(y, x)
        h, w = views.shape[-2:]
        if h < side or w < side:
            window = _center_crop_padded(views, side)
        else:
            top, left = _randint(0, h - side + 1, generator), _randint(0, w - side + 1, generator)
            window = views[..., top : top + side, left : left + side]
        window = window.clone()  # the official crops are views of one window tensor
        return window[..., :p, :p], window[..., y : y + p, x : x + p]

    def _pair(
        self,
        views: Tensor,
        y: int,
        x: int,
        margin: int,
        inner: tuple[bool, bool],
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        """Views of crop A and crop B, placed at random with room for the offset."""
        p = self.cfg.patch_size
        h, w = views.shape[-2:]
        mh = margin if inner[0] and h - 2 * margin >= p else 0
        mw = margin if inner[1] and w - 2 * margin >= p else 0
        y, x = _fit_offsets(y, x, h - 2 * mh - p, w - 2 * mw - p, self.cfg, generator)
        top = mh + _randint(0, h - 2 * mh - p - y + 1, generator)
        left = mw + _randint(0, w - 2 * mw - p - x + 1, generator)
        return views[..., top : top + p, left : left + p], views[
            ..., top + y : top + y + p, left + x : left + x + p
        ]
