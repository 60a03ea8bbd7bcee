"""Local and geometric distortions: colour blocks (19), non-eccentricity patch moves (21), and
jitter (22). Op signature as in ``blur.py``.

Positions follow the official draws on the image the op receives. When the training pipeline
distorts a cropped window instead of the whole image, blocks and moved patches are placed in
that window, so they are denser than in the official pipeline (docs/method.md §1.4.5, §8.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from reiqa.distortions import _kernels as K

BLOCK = 32  # colour-block side, px
MAX_BLOCKS = 10  # the largest level; draws are made for all so shapes stay fixed
PATCH = 16  # non-eccentricity patch side, px
MARGIN = 16  # patches keep this far from the border, and move at most +-MARGIN/2
MAX_MOVES = 100
JITTER_ROUNDS = 5


def sample_color_block(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """Top-left corners (MAX_BLOCKS, 2) = (int(U * (h - 32)), int(U * (w - 32))) and colours
    (MAX_BLOCKS, 3) on the 8-bit grid, as the official draws."""
    u = torch.rand((MAX_BLOCKS, 2), generator=generator, device=device, dtype=torch.float64)
    limits = torch.tensor([max(h - BLOCK, 0), max(w - BLOCK, 0)], device=device, dtype=torch.float64)
    corners = torch.trunc(u * limits).to(torch.int64)
    colors = torch.randint(0, 256, (MAX_BLOCKS, 3), generator=generator, device=device) / 255.0
    return {"corners": corners, "colors": colors}


def _square_index(corner: Tensor, side: int, size: int) -> Tensor:
    """(N,) corners -> (N, side) indices, clamped so that squares near the edge stay inside."""
    return (corner.view(-1, 1) + torch.arange(side, device=corner.device)).clamp(max=size - 1)


def color_block(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Paint n solid 32 x 32 blocks of random colour, later blocks over earlier ones."""
    n, _, h, w = images.shape
    corners = params["corners"].to(images.device)  # (N, B, 2)
    colors = params["colors"].to(images)  # (N, B, 3)
    counts = values.to(images.device)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    out = images.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C): a block is one gather/scatter
    for b in range(corners.shape[1]):
        rows = _square_index(corners[:, b, 0], BLOCK, h).view(n, BLOCK, 1)
        cols = _square_index(corners[:, b, 1], BLOCK, w).view(n, 1, BLOCK)
        active = (b < counts).view(n, 1, 1, 1)
        paint = torch.where(active, colors[:, b].view(n, 1, 1, 3), out[batch, rows, cols])
        out.index_put_((batch, rows, cols), paint)
    return out.permute(0, 3, 1, 2).contiguous()


def sample_non_eccentricity(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """MAX_MOVES patch moves (MAX_MOVES, 4) = (src_y, src_x, dst_y, dst_x): the source at least
    16 px inside the border, the destination within +-8 px of it (official draws), both clamped
    so that the patch stays inside images too small for the official ranges."""
    u = torch.rand((MAX_MOVES, 4), generator=generator, device=device, dtype=torch.float64)
    span = torch.tensor([h - PATCH - 2 * MARGIN, w - PATCH - 2 * MARGIN], device=device, dtype=torch.float64)
    src = torch.trunc(u[:, :2] * span) + MARGIN
    dst = torch.trunc((u[:, 2:] - 0.5) * MARGIN + src)
    limit = torch.tensor([max(h - PATCH, 0), max(w - PATCH, 0)], device=device, dtype=torch.float64)
    src = torch.minimum(src.clamp_min(0), limit)
    dst = torch.minimum(dst.clamp_min(0), limit)
    return {"moves": torch.cat([src, dst], dim=1).to(torch.int64)}


def non_eccentricity(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Copy n 16 x 16 patches to nearby places, one after another (later copies read earlier
    ones). Images smaller than a patch are returned unchanged."""
    n, _, h, w = images.shape
    if h < PATCH or w < PATCH:
        return images.clone()
    moves = params["moves"].to(images.device)  # (N, M, 4)
    counts = values.to(images.device)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    out = images.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C)
    for m in range(int(counts.max())):
        src_y, src_x, dst_y, dst_x = moves[:, m].unbind(1)
        # An inactive move copies the patch onto itself, which changes nothing.
        active = m < counts
        dst_y, dst_x = torch.where(active, dst_y, src_y), torch.where(active, dst_x, src_x)
        patch = out[
            batch,
            _square_index(src_y, PATCH, h).view(n, PATCH, 1),
            _square_index(src_x, PATCH, w).view(n, 1, PATCH),
        ]  # (N, P, P, C), a copy
        out.index_put_(
            (
                batch,
                _square_index(dst_y, PATCH, h).view(n, PATCH, 1),
                _square_index(dst_x, PATCH, w).view(n, 1, PATCH),
            ),
            patch,
        )
    return out.permute(0, 3, 1, 2).contiguous()


def sample_jitter(
    h: int, w: int, value: float, generator: torch.Generator | None, device: torch.device
) -> dict[str, Tensor]:
    """JITTER_ROUNDS standard normal shift fields (rounds, 2, H, W): row then column shift."""
    return {"shifts": torch.randn((JITTER_ROUNDS, 2, h, w), generator=generator, device=device)}


def jitter(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """Five rounds of a per-pixel random warp: out(y, x) = in(y - sigma*sy, x - sigma*sx), bicubic,
    mirrored at the edges, clipped after each round. The official op interpolates with cubic
    B-splines (scipy ``map_coordinates``); this uses the cubic convolution of ``grid_sample``,
    which agrees closely for these sub-pixel shifts and runs batched on any device."""
    n, _, h, w = images.shape
    sigma = values.to(images).view(n, 1, 1)
    shifts = params["shifts"].to(images)
    ys = torch.arange(h, device=images.device, dtype=images.dtype).view(1, h, 1)
    xs = torch.arange(w, device=images.device, dtype=images.dtype).view(1, 1, w)
    out = images
    for r in range(shifts.shape[1]):
        src_y = ys - sigma * shifts[:, r, 0]
        src_x = xs - sigma * shifts[:, r, 1]
        # align_corners=False with reflection = half-sample symmetric edges, scipy's 'reflect'.
        grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], dim=-1)
        out = F.grid_sample(out, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
        out = out.clamp(0.0, 1.0)
    return K.floor_to_uint8_grid(out) if compat else out
