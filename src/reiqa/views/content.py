"""Content-aware training views: MoCo-v2 "augmentation B" as PyContrast applies it (docs/method.md §3).

The content encoder was trained with "vanilla MoCo-v2 training code using ResNet-50 and ImageNet
provided in PyContrast ... default settings" (Re-IQA README; MoCo-v2: Chen et al. 2020,
https://arxiv.org/abs/2003.04297). Each image gives two independent draws of the same random
pipeline, the query and the key view, applied in PyContrast's order:

1. RandomResizedCrop to ``size`` x ``size``: torchvision's rule (10 attempts at an area drawn
   uniformly in ``scale`` times the image area and an aspect ratio drawn log-uniformly in
   ``ratio``; if none fits, the centre crop with the ratio clamped to ``ratio``), resized with
   antialiased bilinear interpolation.
2. ColorJitter with probability ``jitter_p``: brightness, contrast and saturation factors in
   [max(0, 1 - s), 1 + s], hue shift in [-h, h], applied in a random order (torchvision's draw).
3. Grayscale with probability ``gray_p``, keeping 3 equal channels.
4. Gaussian blur with probability ``blur_p``, sigma ~ U(``blur_sigma``). PyContrast uses PIL's
   ``GaussianBlur(radius=sigma)`` (box-blur approximation, unbounded support); here the kernel is
   a sampled Gaussian of odd size ``2 * ceil(3 * sigma) + 1`` (3 px at sigma 0.1, 13 px at sigma 2),
   capped at the largest odd size not above the view side, with reflect padding
   (:func:`blur_kernel_size`).
5. Horizontal flip with probability ``flip_p`` (it commutes with steps 2-4).

The random draws follow the order and the formulas of the equivalent torchvision v2 pipeline
(``RandomResizedCrop``, ``RandomApply([ColorJitter])``, ``RandomGrayscale``,
``RandomApply([GaussianBlur])``, ``RandomHorizontalFlip``), so a CPU generator seeded with s gives
the parameters that pipeline draws after ``torch.manual_seed(s)``; only the blur kernel size
differs. PyContrast works on 8-bit PIL images; here everything stays float.

There is **no ImageNet mean/std normalisation here**: views stay in [0, 1] like every other
image in reiqa, and the content encoder wrapper normalises its input with its own mean/std
buffers (docs/method.md §3).

Randomness: every draw comes from the ``torch.Generator`` passed in, never from torch's global
RNG, ``random`` or numpy. Parameters are drawn on the CPU, image by image in order (query, then
key), so a batch gives the same views as its images done one at a time with the same CPU
generator; they are then applied with ``torchvision.transforms.v2.functional`` on the images'
device. A CUDA generator is used only to draw one 63-bit seed for a fresh CPU generator per
call (one host sync), so with a CUDA generator a call is reproducible from the generator's state
but a batch no longer equals its images done one call at a time. Without a generator, a fresh
CPU generator is seeded from OS entropy (``torch.Generator.seed``): the views are then not
reproducible, and the global RNG is still not touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

from reiqa.errors import ConfigError

JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")
"""Colour-jitter operations, indexed as torchvision's ``ColorJitter`` indexes them."""

_JITTER_OPS = {
    "brightness": TF.adjust_brightness,
    "contrast": TF.adjust_contrast,
    "saturation": TF.adjust_saturation,
    "hue": TF.adjust_hue,
}


def _pair(name: str, value: Sequence[float]) -> tuple[float, float]:
    values = tuple(float(v) for v in value)
    if len(values) != 2 or not all(map(math.isfinite, values)):
        raise ConfigError(f"{name} must be 2 finite numbers (low, high), got {value!r}")
    if not values[0] <= values[1]:
        raise ConfigError(f"{name} must have low <= high, got {value!r}")
    return values  # type: ignore[return-value]


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class ContentViewConfig:
    """Parameters of MoCo-v2 augmentation B (PyContrast defaults).

    Attributes:
        size: side of the square output views, in pixels.
        scale: (low, high) range of the crop area as a fraction of the image area, in (0, 1].
        ratio: (low, high) range of the crop aspect ratio width / height, > 0.
        flip_p: probability of a horizontal flip.
        jitter: (brightness, contrast, saturation, hue) strengths; the first three >= 0, hue in
            [0, 0.5]. A strength of 0 switches that operation off.
        jitter_p: probability of applying the colour jitter.
        gray_p: probability of converting to grayscale (3 channels kept).
        blur_sigma: (low, high) range of the Gaussian blur sigma, in pixels of the output view.
        blur_p: probability of blurring.

    Sequences are stored as tuples of floats, so a config read back from JSON lists compares
    equal to the original.
    """

    size: int = 224
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(f"size must be an int >= 1, got {self.size!r}")
        scale = _pair("scale", self.scale)
        if not (scale[0] > 0.0 and scale[1] <= 1.0):
            raise ConfigError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale!r}")
        ratio = _pair("ratio", self.ratio)
        if ratio[0] <= 0.0:
            raise ConfigError(f"ratio must satisfy 0 < low <= high, got {self.ratio!r}")
        jitter = tuple(float(v) for v in self.jitter)
        if len(jitter) != 4 or not all(map(math.isfinite, jitter)):
            raise ConfigError(
                f"jitter must be 4 finite numbers (brightness, contrast, saturation, hue), got {self.jitter}"
            )
        if min(jitter[:3]) < 0.0:
            raise ConfigError(f"jitter brightness, contrast and saturation must be >= 0, got {self.jitter!r}")
        if not 0.0 <= jitter[3] <= 0.5:
            raise ConfigError(f"jitter hue must be in [0, 0.5], got {jitter[3]}")
        sigma = _pair("blur_sigma", self.blur_sigma)
        if sigma[0] <= 0.0:
            raise ConfigError(f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma!r}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            object.__setattr__(self, name, _probability(name, getattr(self, name)))
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "ratio", ratio)
        object.__setattr__(self, "jitter", jitter)
        object.__setattr__(self, "blur_sigma", sigma)


@dataclass(frozen=True)
class ContentViewParams:
    """One drawn view: everything :func:`apply_content_view` needs, as plain Python values, so a
    draw can be logged (``dataclasses.asdict``) and replayed.

    Attributes:
        top, left, height, width: crop box in pixels of the source image.
        size: side of the square output view.
        jitter: colour-jitter operations in the order they are applied, as (name, factor) pairs
            with name in :data:`JITTER_NAMES`; empty when the jitter is not applied.
        gray: whether the view is converted to grayscale.
        blur_sigma: Gaussian blur sigma in output pixels, or None for no blur.
        flip: whether the view is mirrored left-right.
    """

    top: int
    left: int
    height: int
    width: int
    size: int
    jitter: tuple[tuple[str, float], ...] = ()
    gray: bool = False
    blur_sigma: float | None = None
    flip: bool = False


def blur_kernel_size(sigma: float, side: int) -> int:
    """Odd Gaussian kernel size for ``sigma``: ``2 * ceil(3 * sigma) + 1``, capped at the largest
    odd size <= ``side`` (so reflect padding stays valid on a ``side`` x ``side`` image).

    Args:
        sigma: blur standard deviation in pixels, > 0.
        side: smallest side of the image to blur, >= 1.

    Returns:
        An odd int in 1..side.
    """
    return min(2 * math.ceil(3.0 * sigma) + 1, side if side % 2 else side - 1)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    # float32 draw, exactly as torchvision's `torch.empty(1).uniform_(low, high).item()`
    return float(torch.empty(1).uniform_(low, high, generator=generator))


def _coin(p: float, generator: torch.Generator) -> bool:
    # torchvision's RandomApply: skipped when `torch.rand(1) >= p`, so p = 0 never and p = 1 always applies
    return bool(torch.rand(1, generator=generator) < p)


def _draw_crop(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop rule; returns (top, left, crop height, crop width)."""
    area = height * width
    # torchvision keeps log(ratio) as a float32 tensor; doing the same keeps the draws identical
    log_lo, log_hi = torch.log(torch.tensor(ratio, dtype=torch.float32)).tolist()
    for _ in range(10):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = float(torch.exp(torch.empty(1).uniform_(log_lo, log_hi, generator=generator)))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def draw_content_view(
    height: int, width: int, config: ContentViewConfig, *, generator: torch.Generator
) -> ContentViewParams:
    """Draw the parameters of one view of an image of the given size.

    Draw order (that of the torchvision v2 pipeline): crop, jitter coin, (jitter order and
    brightness, contrast, saturation, hue factors), grayscale coin, blur coin, (sigma), flip coin.
    Factors whose strength is 0 are neither drawn nor applied, as in torchvision.

    Args:
        height: source image height in pixels, >= 1.
        width: source image width in pixels, >= 1.
        config: the augmentation settings.
        generator: a CPU generator; every random number comes from it.

    Returns:
        The drawn view parameters.
    """
    top, left, h, w = _draw_crop(height, width, config.scale, config.ratio, generator)
    jitter: tuple[tuple[str, float], ...] = ()
    if _coin(config.jitter_p, generator):
        order = torch.randperm(4, generator=generator).tolist()
        factors: dict[str, float] = {}
        for name, strength in zip(JITTER_NAMES, config.jitter, strict=True):
            if strength == 0.0:
                continue
            low, high = (-strength, strength) if name == "hue" else (max(0.0, 1.0 - strength), 1.0 + strength)
            factors[name] = _uniform(low, high, generator)
        names = [JITTER_NAMES[i] for i in order]
        jitter = tuple((name, factors[name]) for name in names if name in factors)
    gray = _coin(config.gray_p, generator)
    blur_sigma = _uniform(*config.blur_sigma, generator) if _coin(config.blur_p, generator) else None
    flip = _coin(config.flip_p, generator)
    return ContentViewParams(top, left, h, w, config.size, jitter, gray, blur_sigma, flip)


def apply_content_view(image: Tensor, params: ContentViewParams) -> Tensor:
    """Apply drawn view parameters to one image; deterministic.

    Args:
        image: (3, H, W) float in [0, 1], on any device; H and W must contain the crop box.
        params: a draw from :func:`draw_content_view` for an image of this size.

    Returns:
        (3, size, size) float in [0, 1], same dtype and device as ``image`` (a new tensor).
    """
    size = [params.size, params.size]
    view = TF.resized_crop(
        image,
        params.top,
        params.left,
        params.height,
        params.width,
        size,
        interpolation=InterpolationMode.BILINEAR,
        antialias=True,
    )
    for name, factor in params.jitter:
        view = _JITTER_OPS[name](view, factor)
    if params.gray:
        view = TF.rgb_to_grayscale(view, num_output_channels=3)
    if params.blur_sigma is not None:
        k = blur_kernel_size(params.blur_sigma, params.size)
        view = TF.gaussian_blur(view, [k, k], [params.blur_sigma, params.blur_sigma])
    if params.flip:
        view = TF.horizontal_flip(view)
    # not in place: with a full-image crop at the source size, resized_crop returns the input itself
    return view.clamp(0.0, 1.0)


def _draw_generator(generator: torch.Generator | None) -> torch.Generator:
    """The CPU generator the parameters are drawn from (see the module docstring)."""
    if generator is None:
        cpu = torch.Generator()
        cpu.seed()  # OS entropy; the global RNG is left alone
        return cpu
    if generator.device.type == "cpu":
        return generator
    seed = torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device)
    return torch.Generator().manual_seed(int(seed))


def _as_list(images: Tensor | Sequence[Tensor]) -> list[Tensor]:
    if isinstance(images, Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        images = list(images.unbind(0))
    else:
        images = list(images)
    if not images:
        raise ValueError("no images given")
    device = images[0].device
    for i, image in enumerate(images):
        if not isinstance(image, Tensor):
            raise TypeError(f"images[{i}] must be a Tensor, got {type(image).__name__}")
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"images[{i}] must be (3, H, W), got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise TypeError(f"images[{i}] must be float in [0, 1], got {image.dtype}")
        if image.device != device:
            raise ValueError(
                f"images[{i}] is on {image.device}, images[0] on {device}; put all on one device"
            )
    return images


class ContentViews:
    """Builds (query, key) MoCo-v2 augmentation-B views for a batch of images.

    ``views(images, generator=g)`` is ``views.apply(images, views.draw(images, generator=g))``.

    Args:
        config: the augmentation settings.
    """

    def __init__(self, config: ContentViewConfig) -> None:
        self.cfg = config

    def __call__(
        self, images: Tensor | Sequence[Tensor], *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw and apply two views per image.

        Args:
            images: list of (3, H, W) float in [0, 1] (sizes may differ, one device), or an
                (N, 3, H, W) float tensor in [0, 1].
            generator: source of all randomness; CPU or CUDA (see the module docstring). None
                draws from OS entropy, not reproducibly.

        Returns:
            (N, 6, size, size) float in [0, 1], dtype of the first image, on the images' device:
            channels 0-2 the query view, 3-5 the key view.

        Raises:
            ValueError: an image is not (3, H, W), the list is empty, or devices differ.
            TypeError: an image is not a float tensor.
        """
        images = _as_list(images)
        return self.apply(images, self.draw(images, generator=generator))

    def draw(
        self, images: Tensor | Sequence[Tensor], *, generator: torch.Generator | None = None
    ) -> list[tuple[ContentViewParams, ContentViewParams]]:
        """Draw (query, key) parameters per image, in image order; reads only the image sizes.

        Args:
            images: as for ``__call__``.
            generator: as for ``__call__``.

        Returns:
            One (query, key) pair of parameters per image.
        """
        images = _as_list(images)
        g = _draw_generator(generator)
        draws = []
        for image in images:
            h, w = image.shape[-2:]
            query = draw_content_view(h, w, self.cfg, generator=g)
            key = draw_content_view(h, w, self.cfg, generator=g)
            draws.append((query, key))
        return draws

    def apply(
        self, images: Tensor | Sequence[Tensor], params: Sequence[tuple[ContentViewParams, ContentViewParams]]
    ) -> Tensor:
        """Apply drawn parameters; deterministic.

        Args:
            images: as for ``__call__``; N images.
            params: N (query, key) pairs from :meth:`draw` (or a log of one).

        Returns:
            (N, 6, S, S) float in [0, 1] with S the drawn ``size``: channels 0-2 the query view,
            3-5 the key view.
        """
        images = _as_list(images)
        if len(params) != len(images):
            raise ValueError(f"got {len(params)} parameter pairs for {len(images)} images")
        sizes = {p.size for pair in params for p in pair}
        if len(sizes) != 1:
            raise ValueError(f"all views must have one output size, got sizes {sorted(sizes)}")
        s = sizes.pop()
        out = torch.empty(len(images), 6, s, s, dtype=images[0].dtype, device=images[0].device)
        for b, (image, (query, key)) in enumerate(zip(images, params, strict=True)):
            out[b, :3] = apply_content_view(image, query)
            out[b, 3:] = apply_content_view(image, key)
        return out
