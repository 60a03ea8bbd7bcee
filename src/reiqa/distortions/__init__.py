"""The batched synthetic distortion engine: 26 types x 5 levels (docs/method.md §1.3).

``apply`` takes a batch of images on any device, one type and level per image, and returns the
distorted batch on the same device. ``compat=True`` follows the official code, its defects
included (docs/method.md §1.4): 8-bit input, truncation to uint8, sharpen on 0..255 floats, the flat
colour-shift roll, Pillow's box-approximated Gaussian. The default fixes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from reiqa.distortions import _kernels
from reiqa.distortions._kernels import round_to_uint8_grid
from reiqa.distortions.catalog import BY_NAME, CATALOG, NUM_LEVELS, DistortionSpec, get

__all__ = [
    "BY_NAME",
    "CATALOG",
    "NUM_LEVELS",
    "DistortionSpec",
    "apply",
    "get",
    "round_to_uint8_grid",
    "sample_params",
]

TypesLike = int | str | Tensor | Sequence[int | str]
LevelsLike = int | Tensor | Sequence[int]


def _per_image(arg: TypesLike | LevelsLike, n: int, what: str) -> list:
    if isinstance(arg, Tensor):
        if arg.ndim == 0:
            return [int(arg)] * n
        if arg.ndim != 1 or len(arg) != n:
            raise ValueError(f"{what} must be a scalar or have shape ({n},), got {tuple(arg.shape)}")
        return arg.tolist()
    if isinstance(arg, int | str):
        return [arg] * n
    items = list(arg)
    if len(items) != n:
        raise ValueError(f"{what} must have one entry per image ({n}), got {len(items)}")
    return items


def _resolve(images: Tensor, types: TypesLike, levels: LevelsLike) -> tuple[list[int], list[int]]:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, 3, H, W) tensor, got {shape}")
    if not images.is_floating_point():
        raise TypeError(f"images must be float in [0, 1], got {images.dtype}; see reiqa.io.load_image")
    n = images.shape[0]
    type_ids = [get(t).id for t in _per_image(types, n, "types")]
    level_ids = [int(v) for v in _per_image(levels, n, "levels")]
    bad = [v for v in level_ids if not 0 <= v < NUM_LEVELS]
    if bad:
        raise ValueError(f"levels must be in 0..{NUM_LEVELS - 1}, got {bad[0]}")
    return type_ids, level_ids


def sample_params(
    images: Tensor, types: TypesLike, levels: LevelsLike, *, generator: torch.Generator | None = None
) -> list[dict[str, Tensor]]:
    """Draw the random parameters of every image, in image order (empty for deterministic
    types). Image i's draws depend only on the generator's state after images 0..i-1, so a batch
    gives the same result as its images done one at a time with the same generator."""
    type_ids, level_ids = _resolve(images, types, levels)
    h, w = images.shape[-2:]
    device = generator.device if generator is not None else images.device
    params: list[dict[str, Tensor]] = []
    for t, lv in zip(type_ids, level_ids, strict=True):
        spec = CATALOG[t]
        params.append({} if spec.sample is None else spec.sample(h, w, spec.levels[lv], generator, device))
    return params


def apply(
    images: Tensor,
    types: TypesLike,
    levels: LevelsLike,
    *,
    generator: torch.Generator | None = None,
    compat: bool = False,
    params: list[dict[str, Tensor]] | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """Distort each image with its own type and level.

    Args:
        images: (N, 3, H, W) float in [0, 1], any device.
        types: one type for all images or one per image: ids 1..26, names, or an (N,) tensor.
        levels: one level (0..4) for all images or one per image.
        generator: drives the random types (noise fields, positions, directions); on the same
            device as ``images`` for speed. The same seed gives the same output.
        compat: follow the official code and its defects instead of the fixed behaviour.
        params: draws from :func:`sample_params` to replay instead of drawing new ones.
        out: a tensor shaped like ``images`` to write the result into (saves a copy).

    Returns:
        (N, 3, H, W), same dtype and device as ``images``, in [0, 1].
    """
    type_ids, level_ids = _resolve(images, types, levels)
    if params is None:
        params = sample_params(images, type_ids, level_ids, generator=generator)
    work = images.float() if images.dtype in (torch.float16, torch.bfloat16) else images
    if compat:  # the official pipeline only ever sees 8-bit images
        work = _kernels.round_to_uint8_grid(work)
    result = torch.empty_like(work) if out is None or out.dtype != work.dtype else out
    if out is not None and out.shape != images.shape:
        raise ValueError(f"out must have the shape of images {tuple(images.shape)}, got {tuple(out.shape)}")
    type_tensor = torch.tensor(type_ids)
    for t in torch.unique(type_tensor).tolist():
        idx = (type_tensor == t).nonzero().flatten()
        spec = CATALOG[t]
        values = torch.tensor([spec.levels[level_ids[i]] for i in idx.tolist()], dtype=torch.float64)
        group_params = {}
        if spec.sample is not None:
            group_params = {
                k: torch.stack([params[i][k] for i in idx.tolist()]).to(images.device) for k in params[idx[0]]
            }
        dev_idx = idx.to(images.device)
        result[dev_idx] = spec.op(work[dev_idx], values, group_params, compat=compat)
    if out is not None and result is not out:
        out.copy_(result)
        return out
    return result.to(images.dtype)
