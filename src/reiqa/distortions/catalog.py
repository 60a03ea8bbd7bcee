"""The 26 distortion types of Re-IQA, each with its 5 level values (docs/method.md §1.3).

One table that the code, the docs (``reiqa distort --list``) and the tests all read.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from reiqa.distortions import blur, color, compression, local, noise, resize, tone
from reiqa.errors import UnknownNameError

#: op(images (N,3,H,W), values (N,) float64 CPU, params {name: (N, ...)}, *, compat) -> images
DistortionOp = Callable[..., Tensor]
#: sample(h, w, level value, generator, device) -> {name: tensor} for one image
ParamSampler = Callable[[int, int, float, "torch.Generator | None", torch.device], dict[str, Tensor]]


@dataclass(frozen=True)
class DistortionSpec:
    """One distortion type.

    Attributes:
        id: 1..26, the official numbering.
        name: our name, used on the command line.
        official: the function name in the official code.
        family: blur, color, compression, noise, tone, resize, sharpness or local.
        parameter: what the level values are.
        levels: the 5 level values, L0 to L4 (the paper's table, in both modes).
        op: the batched implementation.
        sample: draws the random parameters of one image; None for deterministic types.
        monotone: whether the distortion gets stronger from L0 to L4.
        identity_levels: levels that leave the image (nearly) unchanged.
        notes: anything a user should know about the levels or the fixes.
    """

    id: int
    name: str
    official: str
    family: str
    parameter: str
    levels: tuple[float, float, float, float, float]
    op: DistortionOp
    sample: ParamSampler | None = None
    monotone: bool = True
    identity_levels: tuple[int, ...] = ()
    notes: str = ""

    @property
    def random(self) -> bool:
        return self.sample is not None


_SPECS = (
    DistortionSpec(
        1,
        "gaussian_blur",
        "imblurgauss",
        "blur",
        "sigma (px)",
        (0.1, 0.5, 1, 2, 5),
        blur.gaussian_blur,
        identity_levels=(0,),
        notes="L0 (sigma 0.1) leaves the image unchanged. Default: sampled Gaussian; "
        "compat: Pillow's 3-box approximation.",
    ),
    DistortionSpec(
        2,
        "lens_blur",
        "imblurlens",
        "blur",
        "disk radius (px)",
        (1, 2, 4, 6, 8),
        blur.lens_blur,
        notes="Exact disk coverage kernel in both modes.",
    ),
    DistortionSpec(
        3,
        "color_diffusion",
        "imcolordiffuse",
        "color",
        "amount a (sigma = 1.5a + 2)",
        (1, 3, 6, 8, 12),
        color.color_diffusion,
        notes="Blurred chroma multiplied by a: strong colour cast from L1 on.",
    ),
    DistortionSpec(
        4,
        "color_shift",
        "imcolorshift",
        "color",
        "shift (px)",
        (1, 3, 6, 8, 12),
        color.color_shift,
        sample=color.sample_color_shift,
        notes="Random direction. Default: true 2-D shift; compat: the official flat "
        "roll (a horizontal shift by dy+dx with row wrap-around).",
    ),
    DistortionSpec(
        5,
        "hsv_saturation",
        "imcolorsaturate",
        "color",
        "saturation factor",
        (0.4, 0.2, 0.1, 0, -0.4),
        color.hsv_saturation,
        notes="L3 (0) gives greys; L4 (-0.4) shifts hues.",
    ),
    DistortionSpec(
        6,
        "lab_saturation",
        "imsaturate",
        "color",
        "chroma factor",
        (1, 2, 3, 6, 9),
        color.lab_saturation,
        identity_levels=(0,),
        notes="L0 (factor 1) leaves the image nearly unchanged (gamut clipping only).",
    ),
    DistortionSpec(
        7,
        "jpeg",
        "imcompressjpeg",
        "compression",
        "JPEG quality",
        (70, 43, 36, 24, 7),
        compression.jpeg,
        notes="libjpeg on CPU, nvJPEG on CUDA; 4:2:0 chroma.",
    ),
    DistortionSpec(
        8,
        "white_noise",
        "imnoisegauss",
        "noise",
        "variance",
        (0.001, 0.002, 0.003, 0.005, 0.01),
        noise.white_noise,
        sample=noise.sample_normal_field,
    ),
    DistortionSpec(
        9,
        "color_noise",
        "imnoisecolormap",
        "noise",
        "variance (YCbCr / 255)",
        (1e-4, 5e-4, 1e-3, 2e-3, 3e-3),
        noise.color_noise,
        sample=noise.sample_normal_field,
    ),
    DistortionSpec(
        10,
        "impulse_noise",
        "imnoiseimpulse",
        "noise",
        "probability",
        (0.001, 0.005, 0.01, 0.02, 0.03),
        noise.impulse_noise,
        sample=noise.sample_uniform_field,
    ),
    DistortionSpec(
        11,
        "multiplicative_noise",
        "imnoisemultiplicative",
        "noise",
        "variance",
        (0.001, 0.005, 0.01, 0.02, 0.05),
        noise.multiplicative_noise,
        sample=noise.sample_normal_field,
    ),
    DistortionSpec(
        12,
        "denoise",
        "imdenoise",
        "noise",
        "variance of the added noise",
        (0.001, 0.002, 0.003, 0.005, 0.01),
        noise.denoise,
        sample=noise.sample_denoise,
        monotone=False,
        notes="The denoising blur dominates: strength barely depends on the level.",
    ),
    DistortionSpec(
        13, "brighten", "imbrighten", "tone", "curve amount", (0.1, 0.2, 0.4, 0.7, 1.1), tone.brighten
    ),
    DistortionSpec(14, "darken", "imdarken", "tone", "curve amount", (0.05, 0.1, 0.2, 0.4, 0.8), tone.darken),
    DistortionSpec(
        15,
        "mean_shift",
        "immeanshift",
        "tone",
        "offset",
        (0.15, 0.08, 0, -0.08, -0.15),
        tone.mean_shift,
        monotone=False,
        identity_levels=(2,),
        notes="L2 (offset 0) is the identity; strength is largest at L0 and L4.",
    ),
    DistortionSpec(
        16, "resize_bicubic", "imresizedist", "resize", "factor", (2, 3, 4, 8, 16), resize.resize_bicubic
    ),
    DistortionSpec(
        17,
        "sharpen",
        "imsharpenHi",
        "sharpness",
        "amount",
        (1, 2, 3, 6, 12),
        blur.sharpen,
        notes="compat reproduces the official defect: every level gives a colour-"
        "shifted, near-saturated image (about 6-8 dB PSNR).",
    ),
    DistortionSpec(
        18,
        "contrast",
        "imcontrastc",
        "tone",
        "curve parameter p",
        (0.3, 0.15, 0, -0.4, -0.6),
        tone.contrast,
        monotone=False,
        notes="p > -0.2 raises contrast, p < -0.2 lowers it; no level is the identity.",
    ),
    DistortionSpec(
        19,
        "color_block",
        "imcolorblock",
        "local",
        "number of 32x32 blocks",
        (2, 4, 6, 8, 10),
        local.color_block,
        sample=local.sample_color_block,
    ),
    DistortionSpec(
        20,
        "pixelate",
        "impixelate",
        "resize",
        "p (scale 0.95 - p^0.6)",
        (0.01, 0.05, 0.1, 0.2, 0.5),
        resize.pixelate,
    ),
    DistortionSpec(
        21,
        "non_eccentricity",
        "imnoneccentricity",
        "local",
        "number of 16x16 moves",
        (20, 40, 60, 80, 100),
        local.non_eccentricity,
        sample=local.sample_non_eccentricity,
        monotone=False,
        notes="Patches move by at most 8 px: a weak, local distortion.",
    ),
    DistortionSpec(
        22,
        "jitter",
        "imjitter",
        "local",
        "shift sigma (px)",
        (0.05, 0.1, 0.2, 0.5, 1),
        local.jitter,
        sample=local.sample_jitter,
        notes="Bicubic (cubic convolution) warp; the official uses cubic B-splines.",
    ),
    DistortionSpec(
        23,
        "resize_bilinear",
        "imresizedist_bilinear",
        "resize",
        "factor",
        (2, 3, 4, 8, 16),
        resize.resize_bilinear,
    ),
    DistortionSpec(
        24,
        "resize_nearest",
        "imresizedist_nearest",
        "resize",
        "factor",
        (2, 3, 4, 5, 6),
        resize.resize_nearest,
    ),
    DistortionSpec(
        25,
        "resize_lanczos",
        "imresizedist_lanczos",
        "resize",
        "factor",
        (2, 3, 4, 8, 16),
        resize.resize_lanczos,
    ),
    DistortionSpec(
        26,
        "motion_blur",
        "imblurmotion",
        "blur",
        "line length (px)",
        (12, 16, 20, 24, 28),
        blur.motion_blur,
        sample=blur.sample_motion_blur,
        notes="Vertical or horizontal at random.",
    ),
)

CATALOG: dict[int, DistortionSpec] = {s.id: s for s in _SPECS}
BY_NAME: dict[str, DistortionSpec] = {s.name: s for s in _SPECS}
NUM_LEVELS = 5


def get(key: int | str) -> DistortionSpec:
    """Look up a type by id (1..26, also as a string) or by name (ours or the official one)."""
    if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
        spec = CATALOG.get(int(key))
        if spec is None:
            raise UnknownNameError(
                f"distortion id {key} is not in 1..{len(CATALOG)}; see `reiqa distort --list`"
            )
        return spec
    name = key.strip().lower()
    if name in BY_NAME:
        return BY_NAME[name]
    for spec in _SPECS:
        if spec.official.lower() == name:
            return spec
    near = difflib.get_close_matches(name, list(BY_NAME), n=3)
    raise UnknownNameError(f"unknown distortion {key!r}; close: {near}; all: `reiqa distort --list`")
