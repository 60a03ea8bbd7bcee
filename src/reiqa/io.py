"""Reading and writing image files, and the one place where uint8 pixels become float tensors.

Every image reiqa hands on is float32 ``(3, H, W)`` in [0, 1]. Decoding is done by Pillow; every
decoding failure is turned into :class:`reiqa.errors.ImageLoadError`, whose ``reason`` says what
went wrong and whose message starts with the file's path.

Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is a module global. reiqa never
changes it for good: it applies its own ``max_pixels`` to the size read from the header, and turns
Pillow's check off only while a file is opened (and, for an image larger than Pillow's limit that
passed ours, while it is decoded), under a lock, restoring the old value afterwards.
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from reiqa.errors import ImageLoadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "SUPPORTED_MODES",
    "LoadResult",
    "load_image",
    "load_images",
    "save_image",
    "save_pil",
    "to_pil",
    "to_tensor",
]

StrPath = str | os.PathLike[str]

DEFAULT_MAX_PIXELS = 1 << 28
"""Largest width * height :func:`load_image` decodes by default (268,435,456 pixels, about 1 GiB
as uint8 RGB and 3 GiB as float32)."""

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png",
        ".webp",
        ".bmp", ".dib",
        ".tif", ".tiff",
        ".gif",
        ".pbm", ".pgm", ".ppm", ".pnm",
    }
)  # fmt: skip
"""Lower-case suffixes that ``reiqa.inputs.find_images`` treats as images when it scans a directory."""

_SAVE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

# Single-band modes read straight from the decoded array, and what the full-scale value is.
# "I" is taken as 16-bit (older Pillow and 16-bit PGM give "I" for 0..65535 data); "F" follows
# Pillow's own convention for float images (convert("L") treats it as 0..255).
_GRAY_FULL_SCALE: dict[str, float] = {
    "1": 1.0,
    "L": 255.0,
    "I;16": 65535.0,
    "I;16L": 65535.0,
    "I;16B": 65535.0,
    "I;16N": 65535.0,
    "I": 65535.0,
    "F": 255.0,
}
# Modes that Pillow converts to 8-bit "RGB" or "RGBA" for us ("La" goes through "LA" first).
_COLOR_MODES = frozenset(
    {"RGB", "RGBA", "RGBa", "RGBX", "LA", "La", "PA", "P", "CMYK", "YCbCr", "LAB", "HSV"}
)
SUPPORTED_MODES: frozenset[str] = frozenset(_GRAY_FULL_SCALE) | _COLOR_MODES
"""Pillow modes :func:`to_tensor` converts."""

# What Pillow's decoders raise on malformed files (Image.open itself catches the last four).
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, IndexError, TypeError, struct.error)

_PILLOW_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    """Turn Pillow's decompression-bomb check off while the block runs, restoring it afterwards.

    The limit is a module global shared with every other user of Pillow in the process, so it is
    changed under a lock; reiqa applies its own ``max_pixels`` instead."""
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_background(background: tuple[float, float, float]) -> Tensor:
    """Returns the background as a (3, 1, 1) float32 tensor, after checking it."""
    values = tuple(background)
    if len(values) != 3 or not all(isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"background must be an RGB triple of floats in [0, 1], got {background!r}")
    return torch.tensor(values, dtype=torch.float32).view(3, 1, 1)


def to_tensor(image: Image.Image, *, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Tensor:
    """Convert a Pillow image to a float tensor.

    8-bit data is divided by 255 and 16-bit data ("I;16*", and "I", taken as 0..65535) by 65535,
    so 16-bit precision is kept; "F" is taken on Pillow's 0..255 scale. Values outside the range
    are clamped and NaN becomes 0. Grayscale is repeated over the three channels. Palette, CMYK,
    YCbCr, LAB and HSV images are converted to RGB by Pillow (CMYK without colour management).
    Transparency (an alpha band, a palette with alpha, or a PNG colour key) is composited over
    ``background`` in sRGB values: ``out = alpha * rgb + (1 - alpha) * background``.

    Args:
        image: a Pillow image in one of :data:`SUPPORTED_MODES`. It is loaded if it is not yet.
        background: RGB triple in [0, 1] that transparent pixels are composited over; white by
            default.

    Returns:
        (3, H, W) float32 in [0, 1], contiguous, on the CPU.

    Raises:
        ValueError: the mode is not supported, or ``background`` is not an RGB triple in [0, 1].
    """
    bg = _check_background(background)
    mode = image.mode
    if mode not in SUPPORTED_MODES:
        raise ValueError(f"unsupported image mode {mode!r}; supported: {', '.join(sorted(SUPPORTED_MODES))}")

    alpha: Tensor | None = None  # (1, H, W) float32 in [0, 1]
    if mode in _GRAY_FULL_SCALE and not (mode in ("1", "L") and image.has_transparency_data):
        values = np.asarray(image)  # (H, W) bool, uint8, uint16 (either byte order), int32 or float32
        gray = torch.from_numpy(np.array(values, dtype=np.float32))  # (H, W)
        gray = gray.div_(_GRAY_FULL_SCALE[mode]).nan_to_num_(0.0).clamp_(0.0, 1.0)
        rgb = gray.unsqueeze(0).expand(3, -1, -1)  # (3, H, W), a view
        key = image.info.get("transparency")
        if isinstance(key, int) and mode != "F":  # colour key of a 16-bit grayscale PNG
            alpha = torch.from_numpy(values != key).to(torch.float32).unsqueeze(0)
    else:
        if mode == "La":  # premultiplied; Pillow converts it to "LA" only
            image = image.convert("LA")
        target = "RGBA" if image.has_transparency_data else "RGB"
        if image.mode != target:
            image = image.convert(target)
        pixels = np.asarray(image)  # (H, W, 3 or 4) uint8
        channels = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32))
        channels = channels.div_(255.0)  # (3 or 4, H, W)
        rgb = channels[:3]
        if target == "RGBA":
            alpha = channels[3:]
    if alpha is not None:
        return torch.lerp(bg, rgb, alpha)  # (3, H, W), new and contiguous
    return rgb.contiguous()


def to_pil(image: Tensor) -> Image.Image:
    """Convert a float image to an 8-bit RGB Pillow image.

    Args:
        image: (3, H, W) floating point in [0, 1], on any device. Values are clamped to [0, 1],
            NaN becomes 0, and the result is rounded to the nearest of the 256 levels.

    Returns:
        A Pillow image in mode "RGB", W wide and H tall.

    Raises:
        ValueError: the shape is not (3, H, W).
        TypeError: the tensor is not floating point.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image of shape (3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"expected a floating-point image in [0, 1], got dtype {image.dtype}")
    levels = image.detach().to("cpu", torch.float32).nan_to_num(0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    pixels = levels.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()  # (H, W, 3) uint8
    return Image.fromarray(pixels)


def _check_file(path: Path) -> None:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ImageLoadError(path, "missing", "no such file") from exc
    except OSError as exc:
        raise ImageLoadError(path, "unreadable", f"cannot read it ({type(exc).__name__}: {exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(path, "not-a-file", "is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(path, "not-a-file", "is not a regular file")
    if info.st_size == 0:
        raise ImageLoadError(path, "empty", "the file is empty (0 bytes)")


def _too_many_pixels(path: Path, detail: str, max_pixels: int | None) -> ImageLoadError:
    return ImageLoadError(
        path,
        "too-many-pixels",
        f"{detail}, more than the limit of {max_pixels} pixels; if you trust this file, raise the "
        "limit with the max_pixels argument (--max-pixels on the command line)",
    )


def _decode_error(path: Path, exc: BaseException, max_pixels: int | None) -> ImageLoadError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):  # Pillow's limit was lowered by someone else meanwhile
        return _too_many_pixels(path, f"Pillow refused it ({text})", max_pixels)
    if "truncated" in text.lower() or "broken data stream" in text.lower():
        return ImageLoadError(path, "truncated", f"the file is truncated or its data is cut short ({text})")
    return ImageLoadError(path, "unreadable", f"Pillow could not decode it ({type(exc).__name__}: {text})")


def load_image(
    path: StrPath,
    *,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Tensor:
    """Read an image file into a float tensor.

    Reads whatever Pillow reads (JPEG, PNG, WebP, BMP, TIFF, GIF, PNM, ...); for animated or
    multi-page files, the first frame. The EXIF orientation is applied, so the tensor is upright.
    16-bit grayscale keeps its precision. 16-bit RGB(A) PNG and TIFF files are reduced to 8 bits
    per channel by Pillow itself (up to Pillow 13 it keeps the high byte), so they come back with
    256 levels. Transparent pixels are composited over ``background``; see :func:`to_tensor`.

    Args:
        path: the image file.
        background: RGB triple in [0, 1] that transparent pixels are composited over; white
            ``(1.0, 1.0, 1.0)`` by default.
        max_pixels: largest width * height to decode, checked on the header before any pixel is
            decoded; ``None`` for no limit. Pillow's own decompression-bomb limit does not apply.

    Returns:
        (3, H, W) float32 in [0, 1], contiguous, on the CPU.

    Raises:
        ImageLoadError: the file could not be read; ``reason`` is one of ``missing``,
            ``not-a-file``, ``empty``, ``truncated``, ``not-an-image``, ``too-many-pixels``,
            ``unsupported-mode``, ``unreadable``.
        ValueError: ``background`` or ``max_pixels`` is invalid.
    """
    path = Path(path)
    _check_background(background)
    if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    _check_file(path)
    try:
        with _pillow_bomb_check_off():  # reads the header only, so the lock is held briefly
            im = Image.open(path)
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            path, "not-an-image", "not an image file, or in a format Pillow cannot read"
        ) from exc
    except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise _decode_error(path, exc, max_pixels) from exc
    with im:
        width, height = im.size
        if max_pixels is not None and width * height > max_pixels:
            raise _too_many_pixels(
                path, f"the image is {width}x{height} = {width * height} pixels", max_pixels
            )
        if im.mode not in SUPPORTED_MODES:
            raise ImageLoadError(
                path, "unsupported-mode", f"Pillow mode {im.mode!r} is not supported (format {im.format})"
            )
        pillow_limit = Image.MAX_IMAGE_PIXELS
        # Pillow checks its limit again while decoding some formats (TIFF), so an image between
        # its limit and ours is decoded with the check off, holding the lock.
        over_pillow_limit = pillow_limit is not None and width * height > pillow_limit
        try:
            with _pillow_bomb_check_off() if over_pillow_limit else nullcontext():
                im.load()
            ImageOps.exif_transpose(im, in_place=True)
            if im.mode not in SUPPORTED_MODES:  # a decoder may settle on its mode only when loading
                raise ImageLoadError(path, "unsupported-mode", f"Pillow mode {im.mode!r} is not supported")
            return to_tensor(im, background=background)
        except ImageLoadError:
            raise
        except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
            raise _decode_error(path, exc, max_pixels) from exc


@dataclass
class LoadResult:
    """What :func:`load_images` read.

    Attributes:
        images: one (3, H, W) float32 tensor in [0, 1] per file that loaded, in input order.
        paths: the files that loaded, in the same order as ``images``.
        failures: one :class:`ImageLoadError` per file that did not load, in input order.
    """

    images: list[Tensor] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    failures: list[ImageLoadError] = field(default_factory=list)


def load_images(
    paths: Iterable[StrPath],
    *,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> LoadResult:
    """Load several files with :func:`load_image`, collecting the ones that fail instead of stopping.

    Args:
        paths: the files, in the order wanted.
        background: as in :func:`load_image`.
        max_pixels: as in :func:`load_image`.

    Returns:
        The images and paths of the files that loaded, and an ``ImageLoadError`` for each that did
        not, each list in input order.
    """
    result = LoadResult()
    for path in paths:
        try:
            image = load_image(path, background=background, max_pixels=max_pixels)
        except ImageLoadError as exc:
            result.failures.append(exc)
        else:
            result.images.append(image)
            result.paths.append(Path(path))
    return result


def _save_format(path: StrPath) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise ValueError(
            f"{path}: cannot save images with suffix {Path(path).suffix!r}; "
            f"use one of {', '.join(_SAVE_FORMATS)}"
        )
    return _SAVE_FORMATS[suffix]


def save_image(image: Tensor, path: StrPath, *, quality: int = 95) -> Path:
    """Write a float image to a file, atomically.

    The format follows the suffix (case-insensitive): .png, .jpg/.jpeg, .webp, .bmp, .tif/.tiff.
    The pixels are written to a temporary file in the same directory, flushed to disk, then moved
    over ``path``, so a reader never sees a half-written file. Missing parent directories are
    created.

    Args:
        image: (3, H, W) floating point in [0, 1], on any device; clamped and rounded to 8 bits.
        path: the file to write.
        quality: JPEG and WebP quality, 1..100; ignored by the lossless formats.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the suffix is not one of the above, or ``quality`` is outside 1..100.
    """
    _save_format(path)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    return save_pil(to_pil(image), path, quality=quality)


def save_pil(image: Image.Image, path: StrPath, *, quality: int | None = None) -> Path:
    """Write a Pillow image atomically (see :func:`save_image`: temporary file flushed to disk then
    moved over ``path``). The format follows the suffix, any Pillow can write; ``quality`` (JPEG,
    WebP) defaults to Pillow's own."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{path}: Pillow cannot write images with suffix {path.suffix!r}")
    options = {"quality": quality} if quality is not None and fmt in ("JPEG", "WEBP") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0o666 less the umask, like an ordinary new file (mkstemp would make it 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=fmt, **options)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
