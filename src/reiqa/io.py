"""Reading and writing image files, and the one place where uint8 pixels become float tensors.

Every image reiqa hands on is float32 ``(3, H, W)`` in [0, 1]. Decoding is done by Pillow; every
decoding failure is turned into :class:`reiqa.errors.ImageLoadError`, whose ``reason`` says what
went wrong and whose message starts with the file's path.

Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is a module global. reiqa never
changes it for good: it applies its own ``max_pixels`` to the size read from the header, and turns
Pillow's check off only while a file is opened (and, for an image larger than Pillow's limit that
passed ours, while it is decoded), under a lock, restoring the old value afterwards.

HEIC/HEIF is decoded with the ``pillow-heif`` package, whose Pillow opener is registered (for the
whole process) the first time such a file is loaded; AVIF and JPEG 2000 by Pillow itself, when it
is built with them. Pillow is only ever asked to identify a file as one of the formats of
:data:`IMAGE_SUFFIXES`, whatever its name: its plugins for other formats (EPS, which runs
Ghostscript; WMF/EMF; scientific formats) never see a file. Formats reiqa knows are images but does
not decode (SVG, camera raw, Photoshop, PostScript, WMF/EMF, JPEG XL, OpenEXR, ...) are refused
with the reason ``unsupported-format`` before any decoder sees them.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import stat
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePath
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError, features
from torch import Tensor

from reiqa.atomic import atomic_path
from reiqa.errors import ImageLoadError, printable

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "LOAD_ERROR_REASONS",
    "SUPPORTED_MODES",
    "UNSUPPORTED_SUFFIXES",
    "Failure",
    "array_to_tensor",
    "check_images",
    "decode_image",
    "file_signature",
    "image_size",
    "load_image",
    "open_formats",
    "save_image",
    "save_pil",
    "to_pil",
    "to_tensor",
]

StrPath = str | os.PathLike[str]

DEFAULT_MAX_PIXELS = 1 << 28
"""Largest width * height :func:`load_image` decodes by default (268,435,456 pixels, about 1 GiB
as uint8 RGB and 3 GiB as float32)."""


@dataclass(frozen=True)
class Failure:
    """An image that could not be read, as data (batch jobs carry it where the image would be,
    and it pickles across processes, which an exception with extra fields does not).

    Attributes:
        name: the file or upload, as it was named.
        error: the message of the :class:`ImageLoadError`: the file, then the cause.
        reason: its ``reason`` (see :data:`LOAD_ERROR_REASONS`).
    """

    name: str
    error: str
    reason: str = "unreadable"

    @classmethod
    def of(cls, name: object, exc: ImageLoadError) -> Failure:
        return cls(str(name), str(exc), exc.reason)


LOAD_ERROR_REASONS: frozenset[str] = frozenset(
    {
        "missing",
        "not-a-file",
        "empty",
        "truncated",
        "not-an-image",
        "unsupported-format",
        "too-many-pixels",
        "unsupported-mode",
        "unreadable",
    }
)
"""Every ``reason`` an :class:`reiqa.errors.ImageLoadError` from :func:`load_image` can carry."""

_HEIF_SUFFIXES = (".heic", ".heif", ".hif")
_AVIF_SUFFIXES = (".avif",)
_JPEG2000_SUFFIXES = (".jp2", ".j2k", ".j2c", ".jpf", ".jpx")
# Whether the optional decoders are here; pillow-heif is only looked for, not imported, until needed.
_HEIF_INSTALLED = importlib.util.find_spec("pillow_heif") is not None
_AVIF_AVAILABLE = bool(features.check_module("avif"))
_JPEG2000_AVAILABLE = bool(features.check_codec("jpg_2000"))

# The formats load_image decodes: Pillow's name for each -> the suffixes of its files. A table
# reviewed by hand, not Image.registered_extensions(): Pillow also registers formats that run a
# program (EPS: Ghostscript), render only on Windows (WMF/EMF), read only a header (MPEG) or need a
# handler (GRIB, BUFR, HDF5); IM is left out too (deprecated by Pillow 13, which warns on every file).
# Image.open is given only these formats (see open_formats), so a file whose content is another
# one is refused whatever its name, and never reaches that plugin. In the order Pillow tries them:
# the common ones first, and last PCD and TGA, which have no magic number (their openers try to
# parse any file).
_DECODED_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "MPO": (".mpo",),  # multi-picture JPEG (stereo and some phone cameras): Pillow's JPEG opener reads it
    "PNG": (".png",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "DIB": (".dib",),
    "TIFF": (".tif", ".tiff"),
    "GIF": (".gif",),
    "PPM": (".pbm", ".pgm", ".ppm", ".pnm"),
    "ICO": (".ico",),
    "HEIF": _HEIF_SUFFIXES,  # pillow-heif's opener, registered when the first HEIC is loaded
    "AVIF": _AVIF_SUFFIXES,
    "JPEG2000": _JPEG2000_SUFFIXES,
    "ICNS": (".icns",),
    "PCX": (".pcx",),
    "DCX": (".dcx",),  # multi-page PCX
    "SGI": (".sgi", ".rgb", ".rgba", ".bw"),
    "SUN": (".ras",),
    "QOI": (".qoi",),
    "DDS": (".dds",),
    "BLP": (".blp",),
    "FTEX": (".ftc", ".ftu"),
    "MSP": (".msp",),
    "FLI": (".fli", ".flc"),
    "GBR": (".gbr",),
    "XBM": (".xbm",),
    "XPM": (".xpm",),
    "FITS": (".fits",),  # not .fit: that is also the suffix of Garmin activity files
    "PCD": (".pcd",),
    "TGA": (".tga", ".icb", ".vda", ".vst"),
}
_OPTIONAL_FORMATS = {"HEIF": _HEIF_INSTALLED, "AVIF": _AVIF_AVAILABLE, "JPEG2000": _JPEG2000_AVAILABLE}

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    suffix
    for fmt, suffixes in _DECODED_FORMATS.items()
    if _OPTIONAL_FORMATS.get(fmt, True)
    for suffix in suffixes
)
"""Lower-case suffixes of the formats :func:`load_image` decodes here: JPEG (and MPO), PNG, WebP,
BMP, TIFF, GIF, PNM, ICO, ICNS, TGA, PCX, DCX, SGI, Sun raster, QOI, DDS, BLP, FTEX, MSP,
Photo CD, FLI/FLC, GIMP brush, XBM, XPM and FITS; HEIC/HEIF with pillow-heif installed, AVIF and
JPEG 2000 when Pillow is built with them. ``reiqa.inputs.find_images`` lists these and
:data:`UNSUPPORTED_SUFFIXES` when it scans a directory."""

# Kinds of image reiqa never decodes, and what to tell the user. Camera raw files are TIFF
# underneath, and Pillow would give their small embedded preview, so they are refused by suffix.
_NEVER_DECODED: dict[str, str] = {
    "svg": "SVG is a vector format; convert it to PNG first",
    "raw": "camera raw files are not decoded; develop or convert it to TIFF or JPEG first",
    "psd": "Photoshop documents are not decoded; export it to PNG or TIFF first",
    "exr": "OpenEXR (high dynamic range) is not supported; convert it to a 16-bit PNG or TIFF first",
    "hdr": "Radiance HDR is not supported; convert it to a 16-bit PNG or TIFF first",
    "eps": "PostScript is not decoded (it would run Ghostscript); convert it to PNG first",
    "wmf": "Windows metafiles (WMF/EMF) are not decoded (vector drawings); convert it to PNG first",
    "pdf": "PDF documents are not decoded; export the page as PNG first",
}
# Kinds decoded only when a decoder is available, and what to tell the user when it is not.
_NEEDS_DECODER: dict[str, str] = {
    "heif": "HEIC needs the pillow-heif package (pip install pillow-heif)",
    "avif": "AVIF needs Pillow built with libavif (recent Pillow wheels are: pip install -U pillow)",
    "jpeg2000": "JPEG 2000 needs Pillow built with OpenJPEG",
    "jxl": "JPEG XL is not supported by Pillow here; convert it to PNG or JPEG first",
}
_SUFFIX_KINDS: dict[str, str] = {
    ".svg": "svg", ".svgz": "svg",
    **dict.fromkeys(
        (
            ".raw", ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf",
            ".rw2", ".raf", ".pef", ".srw", ".x3f", ".rwl", ".3fr", ".erf", ".kdc", ".dcr", ".mrw",
            ".mos", ".iiq",
        ),
        "raw",
    ),
    ".psd": "psd", ".psb": "psd",
    ".exr": "exr",
    ".hdr": "hdr",
    ".eps": "eps", ".epsf": "eps", ".epsi": "eps",
    ".wmf": "wmf", ".emf": "wmf",
    ".jxl": "jxl",
    **dict.fromkeys(_HEIF_SUFFIXES, "heif"),
    **dict.fromkeys(_AVIF_SUFFIXES, "avif"),
    **dict.fromkeys(_JPEG2000_SUFFIXES, "jpeg2000"),
}  # fmt: skip

UNSUPPORTED_SUFFIXES: frozenset[str] = frozenset(_SUFFIX_KINDS) - IMAGE_SUFFIXES
"""Lower-case suffixes of image formats :func:`load_image` does not decode here (SVG, camera raw,
Photoshop, OpenEXR, Radiance HDR, Encapsulated PostScript, WMF/EMF, JPEG XL, and HEIC/AVIF/JPEG
2000 without their decoder): it refuses them with the reason ``unsupported-format``. A directory
scan lists them all the same, so that they are reported rather than silently left out. (PostScript
and PDF documents are refused by their content too, but a scan does not list ``.ps`` and ``.pdf``
files: they are documents, not images.)"""

_HEAD_BYTES = 512
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)

_BMP_HEADER_SIZES = frozenset(n.to_bytes(4, "little") for n in (12, 16, 40, 52, 56, 64, 108, 124))


def _signature(head: bytes) -> str | None:
    """The image format that a file's first bytes announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF and BigTIFF
        return "tiff"
    # "BM" alone starts many text files: also want the zero reserved field and a known header size.
    if head[:2] == b"BM" and head[6:10] == bytes(4) and head[14:18] in _BMP_HEADER_SIZES:
        return "bmp"
    if head[4:8] == b"ftyp":
        end = min(len(head), max(16, int.from_bytes(head[:4], "big")))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heif"
        return None  # MP4, QuickTime and other ISO media files
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jxl"
    if head[:4] == b"8BPS":
        return "psd"
    if head[:4] == b"\x76\x2f\x31\x01":
        return "exr"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "hdr"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith((b"<svg", b"<!DOCTYPE svg")) or (text.startswith(b"<?xml") and b"<svg" in text):
        return "svg"
    return None


def _refused_content(head: bytes) -> str | None:
    """The kind of a format never decoded that only a file's first bytes show (the plugins that
    read them run Ghostscript or only work on Windows), or None. Not a :func:`file_signature`: a
    folder scan does not list PostScript or PDF documents."""
    if head.startswith(b"%!PS") or head[:4] == b"\xc5\xd0\xd3\xc6":  # PostScript, DOS EPS binary
        return "eps"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head[:4] == b"\xd7\xcd\xc6\x9a" or (head[:4] == b"\x01\x00\x00\x00" and head[40:44] == b" EMF"):
        return "wmf"  # a placeable WMF, an EMF
    return None


def _read_head(path: Path) -> bytes:
    """The first bytes of a regular file. Opened without blocking, so that a FIFO put in the
    file's place after it was checked cannot hang the caller.

    Raises:
        OSError: it cannot be opened, is no longer a regular file, or cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.read(fd, _HEAD_BYTES)
    finally:
        os.close(fd)


def file_signature(path: StrPath) -> str | None:
    """The image format a file's first bytes announce: ``"jpeg"``, ``"png"``, ``"gif"``,
    ``"webp"``, ``"tiff"``, ``"bmp"``, ``"heif"``, ``"avif"``, ``"jpeg2000"``, ``"jxl"``,
    ``"psd"``, ``"exr"``, ``"hdr"`` or ``"svg"``; None when it announces none of them, is not a
    regular file (a FIFO is never opened) or cannot be read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        return _signature(_read_head(Path(path)))
    except OSError:
        return None


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

_PILLOW_LIMIT_LOCK = threading.Lock()
# warnings.catch_warnings swaps process-wide state, so two threads using it at once can leave
# warnings recorded (lost) for good; Python built with context-aware warnings does not need this.
_WARNINGS_LOCK = threading.Lock()
_WARNINGS_THREAD_SAFE = bool(getattr(sys.flags, "context_aware_warnings", False))
_HEIF_LOCK = threading.Lock()
_heif_ready: bool | None = None  # None: pillow-heif not tried yet


def _fresh_locks() -> None:
    global _PILLOW_LIMIT_LOCK, _WARNINGS_LOCK, _HEIF_LOCK
    _PILLOW_LIMIT_LOCK, _WARNINGS_LOCK, _HEIF_LOCK = threading.Lock(), threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):  # a forked DataLoader worker must not inherit a lock held by a thread
    os.register_at_fork(after_in_child=_fresh_locks)


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


def _check_decode_options(background: tuple[float, float, float], max_pixels: int | None) -> None:
    """The options of load_image and decode_image: ValueError for a bad one."""
    _check_background(background)
    if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")


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


# -- images held in memory (tensors, arrays) -------------------------------------------------------

# float images may overshoot [0, 1] by this much (rounding in a resize or a colour conversion)
RANGE_TOLERANCE = 1e-6


def check_images(images: Tensor, what: str = "images") -> Tensor:
    """(N, 3, H, W) float32 in [0, 1] from a (3, H, W) or (N, 3, H, W) tensor that is float in
    [0, 1] or uint8 (divided by 255). Raises ValueError naming what is wrong and what is expected:
    another shape, an empty image, NaN or infinity, values outside [0, 1], another dtype."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{what}: expected a torch tensor, got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim not in (3, 4):
        raise ValueError(f"{what} must be (3, H, W) or (N, 3, H, W), got shape {shape}")
    if images.shape[-3] != 3:
        hint = " (channels last? use .permute(2, 0, 1))" if shape[-1] == 3 else ""
        raise ValueError(
            f"{what} must be (3, H, W) or (N, 3, H, W) with 3 (RGB) channels, got shape {shape}{hint}"
        )
    if images.numel() == 0:
        raise ValueError(f"{what}: empty, shape {shape}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.dtype.is_floating_point:
        raise ValueError(f"{what}: dtype {images.dtype}; expected float in [0, 1] or uint8 (0..255)")
    images = images.float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{what}: NaN or infinity; expected finite values in [0, 1]")
    low, high = (float(v) for v in torch.aminmax(images))
    if high > 1 + RANGE_TOLERANCE:
        cause = "expected [0, 1]"
        if high <= 255 + RANGE_TOLERANCE:
            cause = "looks like 0..255 values; divide by 255 (or pass uint8)"
        raise ValueError(f"{what}: values up to {high:g}, {cause}")
    if low < -RANGE_TOLERANCE:
        raise ValueError(
            f"{what}: values down to {low:g}, expected raw RGB in [0, 1] (not normalised by a mean "
            "and standard deviation)"
        )
    return images.clamp(0.0, 1.0)


def array_to_tensor(array: np.ndarray) -> tuple[Tensor, bool]:
    """A numpy image or batch as a channels-first tensor, and whether it is one image. The layout
    is read from where the size-3 axis is; a shape where either reading fits is refused."""
    shape = array.shape
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"the array: dtype {array.dtype}; expected float in [0, 1] or uint8 (0..255)")
    if array.ndim not in (3, 4):
        raise ValueError(
            f"the array must be (H, W, 3), (3, H, W), (N, H, W, 3) or (N, 3, H, W), got shape {shape}"
        )
    first = array.ndim - 3  # the axis of C in a channels-first layout
    last, channels_first = shape[-1] == 3, shape[first] == 3
    if last and channels_first:
        raise ValueError(
            f"the array: shape {shape} is ambiguous (channels first or last?); pass a torch tensor "
            "(3, H, W) or (N, 3, H, W)"
        )
    if not (last or channels_first):
        raise ValueError(f"the array needs 3 (RGB) channels, first or last, got shape {shape}")
    if array.dtype not in (np.uint8, np.float16, np.float32, np.float64):
        array = array.astype(np.float64)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # np.asarray(PIL image): torch warns on read-only memory
        array = array.copy()
    tensor = torch.from_numpy(array)
    if last:
        tensor = tensor.movedim(-1, -3)
    return tensor, array.ndim == 3


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
    """Refuse what is not a non-empty regular file, from its status alone (a FIFO is never opened)."""
    try:
        info = path.stat()
    except ValueError as exc:  # an embedded NUL byte (from a CSV list or an API caller)
        raise ImageLoadError(
            path, "unreadable", "the path contains a NUL byte; no file has such a name"
        ) from exc
    except (FileNotFoundError, NotADirectoryError) as exc:
        if path.is_symlink():
            try:
                target = f" (it points to {os.readlink(path)}, which does not exist)"
            except OSError:
                target = ""
            raise ImageLoadError(path, "missing", f"is a broken symbolic link{target}") from exc
        raise ImageLoadError(path, "missing", "no such file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageLoadError(
                path, "unreadable", "is a symbolic link loop (its links lead back to themselves), not a file"
            ) from exc
        raise ImageLoadError(path, "unreadable", f"cannot read it ({type(exc).__name__}: {exc})") from exc
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise ImageLoadError(path, "not-a-file", "is a directory, not an image file")
    if stat.S_ISFIFO(mode):
        raise ImageLoadError(path, "not-a-file", "is a named pipe (FIFO), not an image file")
    if stat.S_ISSOCK(mode):
        raise ImageLoadError(path, "not-a-file", "is a socket, not an image file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise ImageLoadError(path, "not-a-file", "is a device, not an image file")
    if not stat.S_ISREG(mode):
        raise ImageLoadError(path, "not-a-file", "is not a regular file")
    if info.st_size == 0:
        raise ImageLoadError(path, "empty", "the file is empty (0 bytes)")


def _heif_opener_registered() -> bool:
    """Register pillow-heif's Pillow opener, once per process; False when it cannot be imported."""
    global _heif_ready
    with _HEIF_LOCK:
        if _heif_ready is None:
            try:
                import pillow_heif
            except ImportError:  # also raised for a broken libheif
                _heif_ready = False
            else:
                pillow_heif.register_heif_opener()
                _heif_ready = True
        return _heif_ready


def _decoder_missing(kind: str) -> bool:
    if kind == "heif":
        return not _heif_opener_registered()
    if kind == "avif":
        return not _AVIF_AVAILABLE
    if kind == "jpeg2000":
        return not _JPEG2000_AVAILABLE
    if kind == "jxl":  # only a third-party plugin, registered by its own import, reads JPEG XL
        return ".jxl" not in Image.registered_extensions()
    return False


def _check_format(path: Path) -> None:
    """Refuse the image formats reiqa does not decode here (reason ``unsupported-format``), and
    make the HEIF decoder ready for HEIC files. The suffix decides for formats never decoded (a
    camera raw file is a TIFF underneath); otherwise the file's first bytes, then the suffix."""
    try:
        head = _read_head(path)
    except OSError as exc:
        raise ImageLoadError(path, "unreadable", f"cannot read it ({type(exc).__name__}: {exc})") from exc
    _check_head(path, head, path.suffix)


def _check_head(label: object, head: bytes, suffix: str) -> None:
    by_suffix = _SUFFIX_KINDS.get(suffix.lower())
    if by_suffix in _NEVER_DECODED:
        kind = by_suffix
    else:
        kind = _signature(head) or _refused_content(head) or by_suffix
    if kind in _NEVER_DECODED:
        raise ImageLoadError(label, "unsupported-format", _NEVER_DECODED[kind])
    if kind in _NEEDS_DECODER and _decoder_missing(kind):
        raise ImageLoadError(label, "unsupported-format", _NEEDS_DECODER[kind])


@contextmanager
def _recording_warnings(caught: list[warnings.WarningMessage]) -> Iterator[None]:
    """Record the warnings raised in the block into ``caught`` instead of showing them."""
    lock = nullcontext() if _WARNINGS_THREAD_SAFE else _WARNINGS_LOCK
    with lock, warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")  # the caller's filters apply when they are raised again
        try:
            yield
        finally:
            caught.extend(log)


_DECODER_DIRS = tuple(
    os.path.dirname(spec.origin) + os.sep
    for spec in (importlib.util.find_spec("PIL"), importlib.util.find_spec("pillow_heif"))
    if spec is not None and spec.origin
)


_OTHER_WARNINGS: dict[object, object] = {}  # so that "once" and "default" filters still show them once


def _warn_again(path: object, caught: list[warnings.WarningMessage]) -> None:
    """Raise again the warnings recorded while ``path`` was decoded: the decoders' ones as
    "{path}: {message}" (the path escaped by :func:`reiqa.errors.printable`, so that a name cannot
    forge a log line) from the caller of :func:`load_image`, any other (from another thread
    meanwhile) unchanged."""
    for w in caught:
        if w.filename.startswith(_DECODER_DIRS):
            warnings.warn(f"{printable(path)}: {w.message}", w.category, stacklevel=3)
        else:
            warnings.warn_explicit(
                w.message, w.category, w.filename, w.lineno, registry=_OTHER_WARNINGS, source=w.source
            )


def _too_many_pixels(path: Path, detail: str, max_pixels: int | None) -> ImageLoadError:
    return ImageLoadError(
        path,
        "too-many-pixels",
        f"{detail}, more than the limit of {max_pixels} pixels; if you trust this file, raise the "
        "limit with the max_pixels argument (--max-pixels on the command line)",
    )


def _decode_error(path: object, exc: Exception, max_pixels: int | None) -> ImageLoadError:
    """The ImageLoadError for ``exc``, raised while ``path`` was opened, decoded or converted:
    Pillow's limit lowered meanwhile becomes ``too-many-pixels``, a cut-short file ``truncated``,
    anything else ``unreadable``, with the exception's type and text in the message.

    Any Exception is the file's error, not only the ones Pillow's decoders are known to raise on
    malformed files (OSError, ValueError, EOFError, SyntaxError, IndexError, TypeError,
    struct.error, AssertionError): a decoder also raises NotImplementedError for a variant it does
    not implement (a DDS texture with an unknown pixel format), and plugins (pillow-heif) raise
    their own types; one such file must not stop a run over a folder. MemoryError counts too: a
    header within the pixel limit that this machine cannot hold, whose allocation is freed once it
    unwinds, so the next (smaller) file can still be read. KeyboardInterrupt, SystemExit and
    GeneratorExit are not Exceptions and stop the run, as they should."""
    fallback = "not enough memory to decode it" if isinstance(exc, MemoryError) else "malformed data"
    text = str(exc) or fallback
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

    Reads the formats of :data:`IMAGE_SUFFIXES` (JPEG, PNG, WebP, BMP, TIFF, GIF, PNM, ICO, TGA,
    DDS, ..., AVIF and JPEG 2000 when Pillow is built with them, HEIC/HEIF with pillow-heif
    installed), recognised by their content whatever the file's name, and no other: a file in
    another format Pillow knows (EPS, WMF, ...) is refused without reaching its plugin. For
    animated or multi-page files, the first frame. The EXIF orientation is applied, so the tensor is upright.
    16-bit grayscale keeps its precision. 16-bit RGB(A) PNG and TIFF files are reduced to 8 bits
    per channel by Pillow itself (up to Pillow 13 it keeps the high byte), so they come back with
    256 levels. Transparent pixels are composited over ``background``; see :func:`to_tensor`.

    The file's status is checked before it is opened, so a FIFO, socket or device is refused
    without blocking. Warnings the decoders raise (Pillow's "Corrupt EXIF data", ...) are raised
    again, same category, as ``"{path}: {message}"``. Before Python 3.14 (built with
    context-aware warnings) recording them uses process-wide state, so decoding is serialised
    across the threads of one process; worker processes (DataLoader workers) are unaffected.

    Args:
        path: the image file.
        background: RGB triple in [0, 1] that transparent pixels are composited over; white
            ``(1.0, 1.0, 1.0)`` by default.
        max_pixels: largest width * height to decode, checked on the header before any pixel is
            decoded; ``None`` for no limit. Pillow's own decompression-bomb limit does not apply.

    Returns:
        (3, H, W) float32 in [0, 1], contiguous, on the CPU.

    Raises:
        ImageLoadError: the file could not be read; ``reason`` is one of ``missing`` (also a
            broken symbolic link), ``not-a-file`` (a directory, FIFO, socket, device), ``empty``,
            ``truncated``, ``not-an-image``, ``unsupported-format`` (an image format not
            decoded here, see :data:`UNSUPPORTED_SUFFIXES`), ``too-many-pixels``,
            ``unsupported-mode``, ``unreadable`` (also a symbolic link loop).
        ValueError: ``background`` or ``max_pixels`` is invalid.
    """
    path = Path(path)
    _check_decode_options(background, max_pixels)
    _check_file(path)
    _check_format(path)
    caught: list[warnings.WarningMessage] = []
    try:
        with _recording_warnings(caught):
            return _decode(path, background, max_pixels)
    finally:
        _warn_again(path, caught)


def decode_image(
    data: bytes,
    name: str,
    *,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Tensor:
    """:func:`load_image` for an image held in memory (an upload): the same decoders, checks,
    orientation and errors, with ``name`` in messages instead of a path. ``name`` is only a
    label (its suffix helps to recognise the format, as a file's does); nothing is written to
    disk.

    Raises:
        ImageLoadError: as :func:`load_image`; ``path`` is ``name``.
        ValueError: ``background`` or ``max_pixels`` is invalid.
    """
    _check_decode_options(background, max_pixels)
    if not data:
        raise ImageLoadError(name, "empty", "the upload is empty (0 bytes)")
    _check_head(name, data[:_HEAD_BYTES], PurePath(name).suffix)
    caught: list[warnings.WarningMessage] = []
    try:
        with _recording_warnings(caught):
            return _decode(BytesIO(data), background, max_pixels, label=name)
    finally:
        _warn_again(name, caught)


def image_size(data: bytes, name: str) -> tuple[int, int] | None:
    """(width, height) of an image held in memory, from its header alone (nothing is decoded),
    as :func:`decode_image` would open it: the same format checks (HEIC's decoder registered
    when the bytes are HEIC) and formats, Pillow's bomb check off (the size is wanted whatever it
    is). None where :func:`decode_image` would refuse the bytes before their pixels; the
    header's warnings are left to the decoding."""
    try:
        _check_head(name, data[:_HEAD_BYTES], PurePath(name).suffix)
        with (
            _recording_warnings([]),
            _pillow_bomb_check_off(),
            Image.open(BytesIO(data), formats=open_formats()) as im,
        ):
            return im.size
    except Exception:  # any: decoding reports the file's error
        return None


def open_formats() -> tuple[str, ...]:
    """The formats reiqa lets ``Image.open`` identify a file as (also for a header read
    elsewhere, as the service's pixel budget does), in the order it tries them: those of
    ``_DECODED_FORMATS`` that have an opener in this process (HEIF once pillow-heif's is
    registered; MPO has none of its own, JPEG's reads it)."""
    Image.init()  # imports every plugin, once
    return tuple(f for f in _DECODED_FORMATS if f in Image.OPEN)


def _decode(
    source: Path | BinaryIO,
    background: tuple[float, float, float],
    max_pixels: int | None,
    *,
    label: object = None,
) -> Tensor:
    path = source if label is None else label
    try:
        with _pillow_bomb_check_off():  # reads the header only, so the lock is held briefly
            im = Image.open(source, formats=open_formats())
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            path, "not-an-image", "not an image file, or in a format reiqa does not decode"
        ) from exc
    except Exception as exc:  # any: see _decode_error
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
        except Exception as exc:  # any: see _decode_error
            raise _decode_error(path, exc, max_pixels) from exc


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
    # open() makes a new file 0o666 less the umask, like any other (mkstemp would make it 0o600)
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        image.save(f, format=fmt, **options)
    return path
