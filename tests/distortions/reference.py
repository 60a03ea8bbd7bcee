"""Independent reference renderings of the 26 Re-IQA distortions (compat behaviour).

Written from ``docs/method.md`` §1.3/§1.4 with PIL, numpy, scipy and scikit-image only, so that the
batched torch engine can be compared against something that shares none of its code.  The
official code's defects are reproduced on purpose: truncating ``uint8`` casts, the ``rgb2lab`` call on
0..255 floats in ``imsharpenHi``, the flattened ``np.roll`` in ``imcolorshift``, and so on.

Randomness never comes from an RNG in here; it is passed in through keyword parameters, see
:func:`render`.  Floating-point dtypes (float32 vs float64) follow the official pipeline, because
the final truncation makes results sensitive to the last bit.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage
from scipy.interpolate import UnivariateSpline
from skimage import color, filters

__all__ = ["DETERMINISTIC", "LEVELS", "PARAMS", "render"]

LEVELS: dict[int, tuple[float, ...]] = {
    1: (0.1, 0.5, 1, 2, 5),  # gaussian blur: PIL radius
    2: (1, 2, 4, 6, 8),  # lens blur: disk radius
    3: (1, 3, 6, 8, 12),  # colour diffusion: amount
    4: (1, 3, 6, 8, 12),  # colour shift: pixels
    5: (0.4, 0.2, 0.1, 0, -0.4),  # colour saturation (HSV S factor)
    6: (1, 2, 3, 6, 9),  # saturation (Lab a*, b* factor)
    7: (70, 43, 36, 24, 7),  # JPEG quality
    8: (0.001, 0.002, 0.003, 0.005, 0.01),  # white noise variance
    9: (0.0001, 0.0005, 0.001, 0.002, 0.003),  # colour-map (YCbCr) noise variance
    10: (0.001, 0.005, 0.01, 0.02, 0.03),  # impulse probability
    11: (0.001, 0.005, 0.01, 0.02, 0.05),  # multiplicative noise variance
    12: (0.001, 0.002, 0.003, 0.005, 0.01),  # denoise: pre-noise variance
    13: (0.1, 0.2, 0.4, 0.7, 1.1),  # brighten
    14: (0.05, 0.1, 0.2, 0.4, 0.8),  # darken
    15: (0.15, 0.08, 0, -0.08, -0.15),  # mean shift
    16: (2, 3, 4, 8, 16),  # resize factor, bicubic
    17: (1, 2, 3, 6, 12),  # (broken) sharpening strength
    18: (0.3, 0.15, 0, -0.4, -0.6),  # contrast curve parameter
    19: (2, 4, 6, 8, 10),  # number of colour blocks
    20: (0.01, 0.05, 0.1, 0.2, 0.5),  # pixelate parameter
    21: (20, 40, 60, 80, 100),  # number of patch moves
    22: (0.05, 0.1, 0.2, 0.5, 1),  # jitter sigma (px)
    23: (2, 3, 4, 8, 16),  # resize factor, bilinear
    24: (2, 3, 4, 5, 6),  # resize factor, nearest
    25: (2, 3, 4, 8, 16),  # resize factor, lanczos
    26: (12, 16, 20, 24, 28),  # motion blur kernel length
}

#: Keyword parameters each randomised type requires (and accepts).
PARAMS: dict[int, frozenset[str]] = {
    4: frozenset({"shift"}),
    8: frozenset({"noise"}),
    9: frozenset({"noise"}),
    10: frozenset({"u"}),
    11: frozenset({"noise"}),
    12: frozenset({"noise", "box"}),
    19: frozenset({"blocks"}),
    21: frozenset({"moves"}),
    22: frozenset({"shifts"}),
    26: frozenset({"vertical"}),
}

DETERMINISTIC: frozenset[int] = frozenset(set(LEVELS) - set(PARAMS))


# --------------------------------------------------------------------------------------------
# helpers


def _unit_float32(image: np.ndarray) -> np.ndarray:
    """``np.float32(array / 255.0)``: the official "[0,1] float" (division in float64, then cast)."""
    return (image / 255.0).astype(np.float32)


def _trunc(values: np.ndarray) -> np.ndarray:
    """The official ``astype(uint8)``: truncation toward zero, no rounding."""
    return values.astype(np.uint8)


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image)


def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _convolve_channels(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel ``ndimage.convolve(mode='nearest')`` whose result is truncated into uint8.

    The official passes a uint8 view as ``output``; the C cast from double truncates.  The
    accumulation is done in double either way, so convolving a float64 copy and truncating is the
    same thing.
    """
    out = np.empty_like(image)
    for c in range(3):
        res = ndimage.convolve(image[:, :, c].astype(np.float64), kernel, mode="nearest")
        out[:, :, c] = _trunc(res)
    return out


def _minmax(e: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] unless the array is constant (then returned unchanged)."""
    lo, hi = np.min(e), np.max(e)
    if lo < hi:
        e = (e - lo) / (hi - lo)
    return e


def _lab2rgb(lab: np.ndarray) -> np.ndarray:
    # skimage warns about negative Z values it clips; the official silences all warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return color.lab2rgb(lab)


def _resize_round_trip(image: np.ndarray, factor: float, resample: int | None) -> np.ndarray:
    im = _pil(image)
    w, h = im.size
    small_size = (int(w / factor), int(h / factor))
    if resample is None:  # the official relies on Pillow's default filter (bicubic)
        back = im.resize(small_size).resize((w, h))
    else:
        back = im.resize(small_size, resample).resize((w, h), resample)
    return _arr(back)


# --------------------------------------------------------------------------------------------
# the 26 distortions


def _blur_gauss(image, a):
    return _arr(_pil(image).filter(ImageFilter.GaussianBlur(radius=a)))


def _disk_kernel(r: float) -> np.ndarray:
    """MATLAB ``fspecial('disk', r)``: pixel-area coverage of a disk of radius r, normalised."""
    c = int(np.ceil(r - 0.5))
    xs, ys = np.meshgrid(np.arange(-c, c + 1), np.arange(-c, c + 1), indexing="xy")
    big = np.maximum(np.abs(xs), np.abs(ys)).astype(np.float64)
    small = np.minimum(np.abs(xs), np.abs(ys)).astype(np.float64)
    r2 = r * r

    def _chord(cond_lin, lin, cond_sqrt, edge):
        with np.errstate(invalid="ignore"):
            root = np.nan_to_num(np.sqrt(r2 - edge**2) * cond_sqrt, nan=0.0)
        return cond_lin * lin + root

    lo_out = r2 < (big + 0.5) ** 2 + (small - 0.5) ** 2
    m1 = _chord(lo_out, small - 0.5, ~lo_out, big + 0.5)
    hi_in = r2 > (big - 0.5) ** 2 + (small + 0.5) ** 2
    m2 = _chord(hi_in, small + 0.5, ~hi_in, big - 0.5)

    a1, a2 = np.arcsin(m1 / r), np.arcsin(m2 / r)
    area = r2 * (0.5 * (a2 - a1) + 0.25 * (np.sin(2 * a2) - np.sin(2 * a1)))
    area = area - (big - 0.5) * (m2 - m1) + (m1 - small + 0.5)
    on_edge = (
        (r2 < (big + 0.5) ** 2 + (small + 0.5) ** 2) & (r2 > (big - 0.5) ** 2 + (small - 0.5) ** 2)
    ) | ((small == 0) & (big - 0.5 < r) & (big + 0.5 >= r))
    grid = area * on_edge + ((big + 0.5) ** 2 + (small + 0.5) ** 2 < r2)
    grid[c, c] = min(np.pi * r2, np.pi / 2)
    # (MATLAB's extra edge correction only applies for r < 0.5-ish radii; never for r >= 1.)
    grid[c, c] = min(grid[c, c], 1)
    return grid / grid.sum()


def _blur_lens(image, r):
    return _convolve_channels(image, _disk_kernel(r))


def _color_diffuse(image, a):
    lab = color.rgb2lab(image)
    lightness = lab[:, :, 0].copy()
    blurred = filters.gaussian(lab, sigma=1.5 * a + 2, channel_axis=-1) * a
    blurred[:, :, 0] = lightness
    rgb = np.clip(255 * _lab2rgb(blurred), 0, 255)
    return _trunc(rgb)


def _color_shift(image, a, *, shift):
    dy, dx = (int(s) for s in shift)
    if dy < 0 or dx < 0:
        raise ValueError("shift components must be non-negative")
    img = _unit_float32(image)
    gray = 0.2989 * img[:, :, 0] + 0.5870 * img[:, :, 1] + 0.1140 * img[:, :, 2]
    edges = np.hypot(np.gradient(gray, axis=0), np.gradient(gray, axis=1))
    edges = filters.gaussian(edges, sigma=4)
    edges = _minmax(np.clip(_minmax(edges), 0.1, 1))
    hi = np.percentile(edges, 99)
    lo = 1 - np.percentile(1 - edges, 99)
    edges = _minmax(np.clip(edges, lo, hi))

    green = img[:, :, 1]
    pad = max(dy, dx)
    if pad == 0:  # cannot happen in the official (amount >= 1); taken as "no shift"
        moved = green
    else:
        padded = np.pad(green, pad, mode="symmetric")
        # defect (§1.4.2): np.roll without axis rolls the *flattened* array by dy + dx
        padded = np.roll(padded.ravel(), dy + dx).reshape(padded.shape)
        moved = padded[pad:-pad, pad:-pad]

    out = img.copy()
    out[:, :, 1] = moved * edges + green * (1 - edges)
    return _trunc(out * 255.0)


def _color_saturate(image, a):
    hsv = color.rgb2hsv(image)
    hsv[:, :, 1] *= a
    return _trunc(np.clip(color.hsv2rgb(hsv) * 255.0, 0, 255))


def _saturate(image, a):
    lab = color.rgb2lab(image)
    lab[:, :, 1:] *= a
    return _trunc(np.clip(_lab2rgb(lab) * 255.0, 0, 255))


def _jpeg(image, q):
    buf = io.BytesIO()
    _pil(image).save(buf, format="JPEG", quality=int(q))
    buf.seek(0)
    with Image.open(buf) as im:
        return _arr(im)


def _check_field(name: str, arr, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def _add_white_noise(image, var, noise):
    noise = _check_field("noise", noise, image.shape)
    noisy = _unit_float32(image) + var**0.5 * noise  # float32 + float64 -> float64
    return _trunc(np.clip(noisy * 255.0, 0, 255))


def _noise_gauss(image, var, *, noise):
    return _add_white_noise(image, var, noise)


def _noise_colormap(image, var, *, noise):
    noise = _check_field("noise", noise, image.shape)
    ycc = color.rgb2ycbcr(image) / 255.0 + var**0.5 * noise
    rgb = color.ycbcr2rgb(ycc * 255.0) * 255.0
    return _trunc(np.clip(rgb, 0, 255))


def _noise_impulse(image, p, *, u):
    u = _check_field("u", u, image.shape[:2])
    out = image.copy()
    out[u < p / 2] = 0
    out[u > 1 - p / 2] = 255
    return out


def _noise_multiplicative(image, var, *, noise):
    noise = _check_field("noise", noise, image.shape)
    img = _unit_float32(image)
    noisy = img + img * (var**0.5 * noise)
    return _trunc(np.clip(noisy * 255.0, 0, 255))


def _denoise(image, var, *, noise, box):
    noisy = _pil(_add_white_noise(image, var, noise))
    filt = ImageFilter.BoxBlur(radius=2) if box else ImageFilter.GaussianBlur(radius=3)
    return _arr(noisy.filter(filt))


def _spline(xs: Sequence[float], ys: Sequence[float], k: int) -> UnivariateSpline:
    # Default smoothing (s = number of points): with these symmetric/minimal point sets the fit is
    # the exact interpolating polynomial, as the spec states.
    return UnivariateSpline(np.asarray(xs, float), np.asarray(ys, float), k=k)


def _brighten(image, a):
    curve = _spline([0, 0.5, 1], [0, 0.5 + 0.5 * a, 1], k=2)

    def f(x):
        return np.clip(curve(x), 0, 1)

    img = _unit_float32(image)
    lab = color.rgb2lab(img)  # float32 stays float32
    lab[:, :, 0] = f(lab[:, :, 0] / 100.0) * 100.0
    via_lab = np.clip(_lab2rgb(lab), 0, 1)
    out = (2 * f(img) + via_lab) / 3.0
    return _trunc(np.clip(out * 255.0, 0, 255))


def _darken(image, p):
    curve = _spline([0, 0.5, 1], [0, 0.5 - p / 2, 1], k=2)
    out = np.clip(curve(_unit_float32(image)), 0, 1)
    return _trunc(out * 255)


def _mean_shift(image, a):
    out = (_unit_float32(image) + a) * 255.0  # stays float32, as in the official
    return _trunc(np.clip(out, 0, 255))


def _sharpen_broken(image, k):
    # defect (§1.4.1): 0..255 floats handed to rgb2lab, which expects [0, 1]
    lab = color.rgb2lab(image.astype(np.float32))
    lum = lab[:, :, 0]
    lap = np.gradient(np.gradient(lum, axis=1), axis=1) + np.gradient(np.gradient(lum, axis=0), axis=0)
    lab[:, :, 0] = np.clip(lum - k * lap, 0, 100)
    return _trunc(255 * _lab2rgb(lab))  # lab2rgb already clips to [0, 1]


def _contrast(image, p):
    curve = _spline([0, 0.3, 0.5, 0.7, 1], [0, 0.25 - p / 4, 0.5, 0.75 + p / 4, 1], k=3)
    out = np.clip(curve(_unit_float32(image)), 0, 1)
    return _trunc(out * 255)


def _color_block(image, n, *, blocks):
    out = image.copy()
    for y, x, rgb in blocks:
        out[int(y) : int(y) + 32, int(x) : int(x) + 32, :] = np.asarray(rgb, dtype=np.uint8)
    return out


def _pixelate(image, p):
    im = _pil(image)
    z = 0.95 - p**0.6
    small = im.resize((int(z * im.width), int(z * im.height)), resample=Image.Resampling.NEAREST)
    return _arr(small.resize((im.width, im.height), resample=Image.Resampling.NEAREST))


def _non_eccentricity(image, n, *, moves):
    out = image.copy()
    for sy, sx, dy, dx in moves:
        sy, sx, dy, dx = int(sy), int(sx), int(dy), int(dx)
        out[dy : dy + 16, dx : dx + 16, :] = out[sy : sy + 16, sx : sx + 16, :].copy()
    return out


def _jitter(image, sigma, *, shifts):
    if len(shifts) != 5:
        raise ValueError("imjitter needs exactly 5 shift fields")
    h, w = image.shape[:2]
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    cur = image.astype(np.float32)
    for field in shifts:
        field = _check_field("shifts[i]", field, (h, w, 2)) * sigma
        coords = [(rows - field[:, :, 0]).ravel(), (cols - field[:, :, 1]).ravel()]
        warped = np.empty_like(cur)
        for c in range(3):
            # float32 input -> float32 output (cubic spline prefilter is done in float64 inside)
            warped[:, :, c] = ndimage.map_coordinates(cur[:, :, c], coords, order=3, mode="reflect").reshape(
                h, w
            )
        cur = np.clip(warped, 0, 255)
    return _trunc(cur)


def _blur_motion(image, k, *, vertical):
    k = int(k)
    kernel = np.zeros((k, k))
    mid = int((k - 1) / 2)
    if vertical:
        kernel[:, mid] = 1.0
    else:
        kernel[mid, :] = 1.0
    kernel /= k
    return _convolve_channels(image, kernel)


_FUNCS: dict[int, Callable[..., np.ndarray]] = {
    1: _blur_gauss,
    2: _blur_lens,
    3: _color_diffuse,
    4: _color_shift,
    5: _color_saturate,
    6: _saturate,
    7: _jpeg,
    8: _noise_gauss,
    9: _noise_colormap,
    10: _noise_impulse,
    11: _noise_multiplicative,
    12: _denoise,
    13: _brighten,
    14: _darken,
    15: _mean_shift,
    16: lambda im, f: _resize_round_trip(im, f, None),
    17: _sharpen_broken,
    18: _contrast,
    19: _color_block,
    20: _pixelate,
    21: _non_eccentricity,
    22: _jitter,
    23: lambda im, f: _resize_round_trip(im, f, Image.Resampling.BILINEAR),
    24: lambda im, f: _resize_round_trip(im, f, Image.Resampling.NEAREST),
    25: lambda im, f: _resize_round_trip(im, f, Image.Resampling.LANCZOS),
    26: _blur_motion,
}


def render(type_id: int, image: np.ndarray, level: int, **params) -> np.ndarray:
    """Reference rendering of distortion ``type_id`` (1..26) at ``level`` (0..4).

    ``image`` is uint8 (H, W, 3) and is not modified; the result is uint8 (H, W, 3).  Random
    inputs are passed explicitly (see ``PARAMS``):

    * 4 ``shift=(a, b)``: the official non-negative rounded shift; flat roll by ``a + b``.
    * 8, 11 ``noise``: standard normal (H, W, 3); scaled here by sqrt(var).
    * 9 ``noise``: standard normal (H, W, 3), added in the YCbCr/255 domain times sqrt(var).
    * 10 ``u``: uniform [0, 1) (H, W); black where u < p/2, white where u > 1 - p/2.
    * 12 ``noise`` as for 8, ``box``: True for PIL BoxBlur(2), False for PIL GaussianBlur(3).
    * 19 ``blocks``: [(y, x, (r, g, b)), ...] 32x32 blocks, painted in order.
    * 21 ``moves``: [(src_y, src_x, dst_y, dst_x), ...] 16x16 copies, in order.
    * 22 ``shifts``: 5 standard-normal (H, W, 2) fields (row, col), scaled here by sigma.
    * 26 ``vertical``: True for the official ``phi == 0`` (vertical line kernel).
    """
    if type_id not in _FUNCS:
        raise ValueError(f"unknown distortion type {type_id!r}")
    if not 0 <= level <= 4:
        raise ValueError(f"level must be in 0..4, got {level!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    expected = PARAMS.get(type_id, frozenset())
    if set(params) != expected:
        raise TypeError(f"type {type_id} takes params {sorted(expected)}, got {sorted(params)}")
    out = _FUNCS[type_id](image.copy(), LEVELS[type_id][level], **params)
    assert out.dtype == np.uint8 and out.shape == image.shape
    return out
