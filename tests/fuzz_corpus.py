"""A seeded corpus of mutated image files for fuzzing the loaders and ``reiqa score``.

A few small valid images (textured RGB, grayscale, RGBA, 16-bit, palette, CMYK) are saved as
JPEG, PNG, WebP, TIFF, GIF and BMP with Pillow, then each corpus file is one of them mutated with
a seeded :class:`numpy.random.Generator`: truncations, bit flips, byte-run overwrites, header field
edits (huge or zero sizes), chunk or segment duplication and removal, appended garbage, a suffix
that does not match the content, or a few of these at once. The same seed gives the same bytes.

File names are ASCII and show the base format and mutation, e.g. ``0007-png-bitflip.png``.

A second, smaller corpus (:func:`make_rare_corpus`) covers the rarer formats reiqa decodes (TGA,
DDS, PCX, SGI, ICNS, QOI, BLP, MPO, XBM, FLI, ...) and formats it refuses (EPS, WMF/EMF, PDF, PSD,
IM): a small valid file of each, written by Pillow where it can write the format and built by
hand where it cannot, then truncated at several offsets, with bits flipped in its header, and
under the suffix of another format.

Run as a script to write a corpus: ``python tests/fuzz_corpus.py OUT_DIR [--n 1000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import io
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "FORMATS",
    "MUTATIONS",
    "RARE_FORMATS",
    "REFUSED_FORMATS",
    "TARGETED",
    "base_images",
    "dds_unknown_fourcc",
    "make_corpus",
    "make_rare_corpus",
    "mutate",
    "rare_images",
    "set_dims",
]

MAX_FILE_BYTES = 48 * 1024
"""Every corpus file is smaller than this."""

FORMATS: dict[str, str] = {
    "jpeg": ".jpg",
    "png": ".png",
    "webp": ".webp",
    "tiff": ".tif",
    "gif": ".gif",
    "bmp": ".bmp",
}
"""Base format -> the suffix its files get (unless the mutation swaps it)."""

# Other spellings find_images also accepts, used now and then for the unswapped suffix.
_ALT_SUFFIXES: dict[str, list[str]] = {
    "jpeg": [".jpeg", ".JPG", ".jpe", ".jfif"],
    "png": [".PNG"],
    "webp": [".WEBP"],
    "tiff": [".tiff", ".TIF"],
    "gif": [".GIF"],
    "bmp": [".dib", ".BMP"],
}

# Declared sizes for header edits: above reiqa's default max_pixels (1 << 28), zero, extreme
# aspect ratios, and a few larger than the data but still allowed.
_HUGE_SIZES: list[tuple[int, int]] = [
    (60000, 60000),
    (65535, 65535),
    (16385, 16384),
    (0, 0),
    (0, 48),
    (48, 0),
    (1, 65535),
    (65535, 1),
    (640, 480),
    (1, 1),
]


@dataclass(frozen=True)
class Base:
    """One valid encoded image the mutations start from."""

    fmt: str  # a key of FORMATS
    name: str  # short description, e.g. "rgb48"
    data: bytes


def _texture(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """(h, w, channels) uint8: a smooth colour field, hard edges and fine noise."""
    coarse = rng.random((-(-h // 8), -(-w // 8), channels))
    smooth = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w]
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
    edges = (((xs + 0.5 * ys)[..., None] + rng.random(channels)) % 0.5 > 0.25).astype(np.float64)
    noise = rng.random((h, w, channels))
    return np.clip(255 * (0.55 * smooth + 0.3 * edges + 0.15 * noise), 0, 255).astype(np.uint8)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def base_images() -> list[Base]:
    """The valid encoded images every corpus is built from (the same for every seed)."""
    rng = np.random.default_rng(12345)
    rgb48 = Image.fromarray(_texture(rng, 48, 48, 3))
    rgb64 = Image.fromarray(_texture(rng, 40, 64, 3))
    gray = Image.fromarray(_texture(rng, 36, 44, 1)[..., 0])
    rgba = Image.fromarray(_texture(rng, 32, 32, 4))
    gray16 = Image.fromarray(_texture(rng, 24, 30, 1)[..., 0].astype(np.uint16) * 257)
    palette = rgb48.quantize(16)
    palette.info["transparency"] = 3
    frame2 = rgb48.transpose(Image.Transpose.FLIP_LEFT_RIGHT).quantize(16)

    bases = [
        Base("jpeg", "rgb48", _encode(rgb48, "JPEG", quality=90)),
        Base("jpeg", "rgb64prog", _encode(rgb64, "JPEG", quality=80, progressive=True)),
        Base("jpeg", "gray", _encode(gray, "JPEG", quality=85)),
        Base("jpeg", "cmyk", _encode(rgb48.convert("CMYK"), "JPEG", quality=75)),
        Base("jpeg", "exif", _encode(rgb64, "JPEG", quality=70, exif=_exif_orientation(6))),
        Base("png", "rgb48", _encode(rgb48, "PNG")),
        Base("png", "rgba", _encode(rgba, "PNG")),
        Base("png", "gray", _encode(gray, "PNG")),
        Base("png", "gray16", _encode(gray16, "PNG")),
        Base("png", "palette", _encode(palette, "PNG")),
        Base("webp", "rgb48", _encode(rgb48, "WEBP", quality=80)),
        Base("webp", "rgba", _encode(rgba, "WEBP", lossless=True)),
        Base("webp", "gray", _encode(gray, "WEBP", quality=60)),
        Base("tiff", "rgb48", _encode(rgb48, "TIFF")),
        Base("tiff", "rgb64lzw", _encode(rgb64, "TIFF", compression="tiff_lzw")),
        Base("tiff", "rgba", _encode(rgba, "TIFF", compression="tiff_adobe_deflate")),
        Base("tiff", "gray", _encode(gray, "TIFF", compression="packbits")),
        Base("tiff", "jpeg", _encode(rgb48, "TIFF", compression="jpeg")),
        Base("tiff", "pages", _encode(rgb48, "TIFF", save_all=True, append_images=[rgb64])),
        Base("gif", "rgb48", _encode(rgb48, "GIF")),
        Base("gif", "gray", _encode(gray, "GIF")),
        Base("gif", "palette", _encode(palette, "GIF")),
        Base("gif", "anim", _encode(palette, "GIF", save_all=True, append_images=[frame2], duration=50)),
        Base("bmp", "rgb48", _encode(rgb48, "BMP")),
        Base("bmp", "palette", _encode(palette.convert("P"), "BMP")),
        Base("bmp", "gray", _encode(gray, "BMP")),
    ]
    return bases


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


# ----------------------------------------------------------------------------- generic mutations


def _offset(rng: np.random.Generator, n: int) -> int:
    return int(rng.integers(0, max(n, 1)))


def truncate(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Cut the file at a random offset: 0 bytes, inside the header, or anywhere."""
    where = rng.choice(["zero", "header", "any", "nearend"], p=[0.05, 0.35, 0.4, 0.2])
    if where == "zero":
        return "trunc0", b""
    if where == "header":
        return "trunchdr", data[: int(rng.integers(1, min(64, len(data))))]
    if where == "nearend":
        return "truncend", data[: max(1, len(data) - int(rng.integers(1, 64)))]
    return "trunc", data[: int(rng.integers(1, len(data)))]


def bitflip(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Flip 1..32 random bits, half the time only in the first 128 bytes."""
    buf = bytearray(data)
    span = len(buf) if rng.random() < 0.5 else min(len(buf), 128)
    for _ in range(int(rng.integers(1, 33))):
        buf[_offset(rng, span)] ^= 1 << int(rng.integers(0, 8))
    return "bitflip", bytes(buf)


def overwrite(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Overwrite a run of 1..64 bytes with random bytes, zeros or 0xff."""
    buf = bytearray(data)
    start = _offset(rng, len(buf))
    length = min(int(rng.integers(1, 65)), len(buf) - start)
    fill = rng.choice(["random", "zero", "ff"])
    if fill == "random":
        run = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    else:
        run = (b"\x00" if fill == "zero" else b"\xff") * length
    buf[start : start + length] = run
    return f"overwrite{fill}", bytes(buf)


def garbage(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Append random bytes, prepend them, or insert them in the middle."""
    junk = rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes()
    where = rng.choice(["append", "prepend", "insert"], p=[0.6, 0.15, 0.25])
    if where == "append":
        return "garbage", data + junk
    if where == "prepend":
        return "prefix", junk[:64] + data
    at = _offset(rng, len(data))
    return "insert", data[:at] + junk[:256] + data[at:]


def range_dup_drop(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Repeat or delete a random byte range (for formats without chunk parsing here)."""
    start = _offset(rng, len(data))
    end = min(len(data), start + int(rng.integers(1, 512)))
    if rng.random() < 0.5:
        return "rangedup", data[:end] + data[start:end] + data[end:]
    return "rangedrop", data[:start] + data[end:]


def not_an_image(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Replace the content by something that is not an image: text, HTML, random bytes, or just
    the right magic number."""
    kind = rng.choice(["text", "html", "random", "magic"])
    if kind == "text":
        return "text", b"this is not an image\n" * int(rng.integers(1, 20))
    if kind == "html":
        return "html", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n"
    if kind == "random":
        return "random", rng.integers(0, 256, int(rng.integers(1, 2048)), dtype=np.uint8).tobytes()
    return "magic", data[:16]


# ---------------------------------------------------------------------------- header field edits


def _size(rng: np.random.Generator) -> tuple[int, int]:
    return _HUGE_SIZES[int(rng.integers(0, len(_HUGE_SIZES)))]


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each chunk; raises ValueError if the file is not a well-formed PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        chunks.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_join(chunks: list[tuple[bytes, bytes]], fix_crc: bool = True) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for ctype, payload in chunks:
        crc = zlib.crc32(ctype + payload) if fix_crc else zlib.crc32(ctype + payload) ^ 1
        out.append(struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc))
    return b"".join(out)


def _jpeg_segments(data: bytes) -> tuple[list[bytes], bytes]:
    """The marker segments before SOS (each with its marker) and the rest, from SOS on."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append(data[pos : pos + 2 + length])
        pos += 2 + length
    return segments, data[pos:]


def _tiff_entries(data: bytes) -> tuple[str, int, list[tuple[int, int, int, int]]]:
    """Byte order, first IFD offset, and (entry offset, tag, type, count) of its entries."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None:
        raise ValueError("not a TIFF")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    entries = []
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, typ, n = struct.unpack(order + "HHI", data[at : at + 8])
        entries.append((at, tag, typ, n))
    return order, ifd, entries


def set_dims(data: bytes, fmt: str, w: int, h: int, *, gif_part: str = "both") -> bytes:
    """``data`` with the declared width and height set to ``w`` x ``h`` (clipped to what the field
    holds). For GIF, ``gif_part`` is ``screen`` (logical screen), ``frame`` (first image
    descriptor) or ``both``."""
    buf = bytearray(data)
    if fmt == "png":
        chunks = _png_chunks(data)
        ctype, ihdr = chunks[0]
        chunks[0] = (ctype, struct.pack(">II", w, h) + ihdr[8:])
        return _png_join(chunks)
    if fmt == "jpeg":
        segments, rest = _jpeg_segments(data)
        sofs = [i for i, s in enumerate(segments) if 0xC0 <= s[1] <= 0xCF and s[1] not in (0xC4, 0xC8, 0xCC)]
        seg = bytearray(segments[sofs[0]])
        seg[5:9] = struct.pack(">HH", min(h, 65535), min(w, 65535))
        segments[sofs[0]] = bytes(seg)
        return data[:2] + b"".join(segments) + rest
    if fmt == "gif":
        if gif_part in ("screen", "both"):
            buf[6:10] = struct.pack("<HH", min(w, 65535), min(h, 65535))
        if gif_part in ("frame", "both"):
            at = data.find(b"\x2c", 13)
            if at > 0 and at + 9 <= len(buf):
                buf[at + 5 : at + 9] = struct.pack("<HH", min(w, 65535), min(h, 65535))
        return bytes(buf)
    if fmt == "bmp":
        buf[18:26] = struct.pack("<ii", min(w, 2**31 - 1), min(h, 2**31 - 1))
        return bytes(buf)
    if fmt == "tiff":
        order, _, entries = _tiff_entries(data)
        for at, tag, _, _ in entries:
            if tag in (256, 257):  # ImageWidth, ImageLength, rewritten as one LONG each
                buf[at + 2 : at + 12] = struct.pack(order + "HII", 4, 1, w if tag == 256 else h)
        return bytes(buf)
    if fmt == "webp":
        chunk = bytes(buf[12:16])
        if chunk == b"VP8X":  # canvas width - 1 and height - 1, 24 bits each
            buf[24:30] = (max(w, 1) - 1).to_bytes(3, "little") + (max(h, 1) - 1).to_bytes(3, "little")
        elif chunk == b"VP8 ":  # 14-bit sizes after the frame tag and start code
            buf[26:30] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
        elif chunk == b"VP8L":  # 14-bit width - 1 and height - 1 after the signature
            bits = ((max(w, 1) - 1) & 0x3FFF) | (((max(h, 1) - 1) & 0x3FFF) << 14)
            old = struct.unpack("<I", buf[21:25])[0]
            buf[21:25] = struct.pack("<I", (old & 0xF0000000) | bits)
        return bytes(buf)
    raise ValueError(f"no size field for {fmt}")


def header_edit(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Set the declared size to something huge, zero or odd, or edit another header field."""
    buf = bytearray(data)
    w, h = _size(rng)
    if fmt == "png":
        chunks = _png_chunks(data)
        ctype, ihdr = chunks[0]
        field = rng.choice(["dims", "dims", "depth", "colortype", "interlace"])
        new = bytearray(ihdr)
        if field == "dims":
            new[0:8] = struct.pack(">II", w, h)
        elif field == "depth":
            new[8] = int(rng.choice([0, 1, 3, 7, 16, 32, 255]))
        elif field == "colortype":
            new[9] = int(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 255]))
        else:
            new[12] = int(rng.choice([1, 2, 255]))
        chunks[0] = (ctype, bytes(new))
        fix = bool(rng.random() < 0.85)
        return f"png{field}" + ("" if fix else "badcrc"), _png_join(chunks, fix_crc=fix)
    if fmt == "jpeg":
        field = rng.choice(["dims", "dims", "ncomp", "precision", "sampling"])
        if field == "dims":
            return "sofdims", set_dims(data, fmt, w, h)
        segments, rest = _jpeg_segments(data)
        sofs = [i for i, s in enumerate(segments) if 0xC0 <= s[1] <= 0xCF and s[1] not in (0xC4, 0xC8, 0xCC)]
        seg = bytearray(segments[sofs[0]])
        if field == "ncomp":
            seg[9] = int(rng.choice([0, 2, 5, 255]))
        elif field == "precision":
            seg[4] = int(rng.choice([0, 12, 16, 255]))
        else:
            seg[11] = int(rng.choice([0x00, 0x44, 0xFF, 0x41]))
        segments[sofs[0]] = bytes(seg)
        return f"sof{field}", data[:2] + b"".join(segments) + rest
    if fmt == "gif":
        field = str(rng.choice(["screen", "frame", "both"]))
        return f"gif{field}", set_dims(data, fmt, w, h, gif_part=field)
    if fmt == "bmp":
        field = rng.choice(["dims", "dims", "negheight", "bpp", "offset"])
        if field == "dims":
            return "bmpdims", set_dims(data, fmt, w, h)
        if field == "negheight":
            buf[22:26] = struct.pack("<i", -int(rng.choice([1, 48, 65535, 2**31 - 1])))
        elif field == "bpp":
            buf[28:30] = struct.pack("<H", int(rng.choice([0, 2, 3, 64, 65535])))
        else:
            buf[10:14] = struct.pack("<I", int(rng.choice([0, 14, 2**31, 2**32 - 1])))
        return f"bmp{field}", bytes(buf)
    if fmt == "tiff":
        order, _, entries = _tiff_entries(data)
        field = rng.choice(["dims", "dims", "bits", "samples", "stripoffset", "stripcount", "ifd"])
        if field == "dims":
            return "tiffdims", set_dims(data, fmt, w, h)
        if field == "ifd":
            buf[4:8] = struct.pack(order + "I", int(rng.choice([0, 8, len(data), 2**31, 2**32 - 1])))
            return "tiffifd", bytes(buf)
        tag, value = {
            "bits": (258, int(rng.choice([0, 3, 64, 65535]))),
            "samples": (277, int(rng.choice([0, 2, 7, 65535]))),
            "stripoffset": (273, int(rng.choice([0, len(data), 2**31]))),
            "stripcount": (279, int(rng.choice([0, 1, 2**31]))),
        }[field]
        for at, t, _, _ in entries:
            if t == tag:  # rewritten as a single LONG so that values above 65535 fit
                buf[at + 2 : at + 12] = struct.pack(order + "HII", 4, 1, value)
        return f"tiff{field}", bytes(buf)
    if fmt == "webp":
        field = rng.choice(["dims", "dims", "riffsize"])
        if field == "riffsize":
            buf[4:8] = struct.pack("<I", int(rng.choice([0, 4, len(data) * 4, 2**32 - 1])))
            return "webpriffsize", bytes(buf)
        return f"webp{data[12:16].decode('latin-1').strip().lower()}dims", set_dims(data, fmt, w, h)
    raise ValueError(f"no header edit for {fmt}")


def _edit(items: list, i: int, action: str, rng: np.random.Generator) -> None:
    """Duplicate, remove, or swap with another (drawn from ``rng``) item ``i`` of ``items``."""
    if action == "dup":
        items.insert(i, items[i])
    elif action == "drop":
        del items[i]
    else:
        j = _offset(rng, len(items))
        items[i], items[j] = items[j], items[i]


def chunks_edit(data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """Duplicate, remove or reorder a PNG chunk, JPEG segment or WebP RIFF chunk."""
    action = rng.choice(["dup", "drop", "swap"])
    if fmt == "png":
        chunks = _png_chunks(data)
        i = _offset(rng, len(chunks))
        critical = [k for k, (ctype, _) in enumerate(chunks) if ctype in (b"PLTE", b"tRNS", b"IDAT")]
        if critical and rng.random() < 0.5:  # aim at the chunks the decoder needs most
            i = critical[_offset(rng, len(critical))]
        name = chunks[i][0].decode("latin-1").lower() if chunks[i][0].isalpha() else ""
        _edit(chunks, i, action, rng)
        return f"chunk{action}{name}", _png_join(chunks)
    if fmt == "jpeg":
        segments, rest = _jpeg_segments(data)
        i = _offset(rng, len(segments))
        _edit(segments, i, action, rng)
        if rng.random() < 0.2:
            rest = rest[: len(rest) - 2]  # no EOI marker
        return f"segment{action}", data[:2] + b"".join(segments) + rest
    if fmt == "webp":
        chunks, pos = [], 12
        while pos + 8 <= len(data):
            (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
            end = pos + 8 + size + (size & 1)
            chunks.append(data[pos:end])
            pos = end
        i = _offset(rng, len(chunks))
        _edit(chunks, i, action, rng)
        body = b"WEBP" + b"".join(chunks)
        return f"riff{action}", b"RIFF" + struct.pack("<I", len(body)) + body
    return range_dup_drop(data, rng, fmt)


Mutation = Callable[[bytes, np.random.Generator, str], tuple[str, bytes]]

_FUNCTIONS: dict[str, Mutation] = {
    "truncate": truncate,
    "bitflip": bitflip,
    "overwrite": overwrite,
    "header": header_edit,
    "chunks": chunks_edit,
    "garbage": garbage,
    "notimage": not_an_image,
}

MUTATIONS: dict[str, float] = {
    "truncate": 0.16,
    "bitflip": 0.20,
    "overwrite": 0.10,
    "header": 0.20,
    "chunks": 0.10,
    "garbage": 0.07,
    "notimage": 0.03,
    "multi": 0.08,  # two or three of the single mutations in a row
    "valid": 0.06,  # unchanged (maybe with a swapped suffix)
}
"""Mutation family -> how often it is drawn."""

_SINGLE = ["truncate", "bitflip", "overwrite", "header", "chunks", "garbage"]


def mutate(data: bytes, fmt: str, rng: np.random.Generator, family: str) -> tuple[str, bytes]:
    """Apply one mutation family to ``data``; returns (kind, new bytes)."""
    if family == "valid":
        return "valid", data
    if family == "multi":
        kinds = []
        for name in rng.choice(_SINGLE, size=int(rng.integers(2, 4)), replace=False):
            if not data:
                break
            kind, data = _apply(_FUNCTIONS[str(name)], data, rng, fmt)
            kinds.append(kind)
        return "multi-" + "+".join(kinds), data
    return _apply(_FUNCTIONS[family], data, rng, fmt)


def _apply(fn: Mutation, data: bytes, rng: np.random.Generator, fmt: str) -> tuple[str, bytes]:
    """``fn``, falling back to a bit flip when the data is too broken for a structured edit."""
    try:
        return fn(data, rng, fmt)
    except (ValueError, IndexError, struct.error):
        return bitflip(data, rng, fmt) if data else ("trunc0", b"")


def _png_edit(data: bytes, *, colortype: int | None = None, drop: bytes = b"", order: bytes = b"") -> bytes:
    """A PNG with IHDR's colour type changed, a chunk type dropped, or its chunks put in the
    ``order`` of the given chunk types (e.g. ``b"tRNS PLTE IHDR"``; the others follow). CRCs are
    kept valid so the decoder gets past them."""
    chunks = _png_chunks(data)
    if colortype is not None:
        ctype, ihdr = chunks[0]
        chunks[0] = (ctype, ihdr[:9] + bytes([colortype]) + ihdr[10:])
    chunks = [c for c in chunks if c[0] != drop]
    rank = {t: k for k, t in enumerate(order.split())}
    chunks.sort(key=lambda c: rank.get(c[0], len(rank)))  # stable: the others keep their order
    return _png_join(chunks)


def dds_unknown_fourcc() -> bytes:
    """A 128-byte DDS texture header (no pixel data) whose pixel format is a FourCC Pillow does
    not know (``ZZZZ``): Pillow's DDS plugin accepts the file, then raises NotImplementedError
    ("Unimplemented pixel format") from ``Image.open``, a type its other decoders do not raise."""
    ddpf_fourcc, caps_flags = 0x4, 0x1 | 0x2 | 0x4 | 0x1000  # DDSD_CAPS, HEIGHT, WIDTH, PIXELFORMAT
    pixel_format = struct.pack("<4I", 32, ddpf_fourcc, int.from_bytes(b"ZZZZ", "little"), 0) + bytes(16)
    header = struct.pack("<3I", caps_flags, 4, 4) + bytes(12) + bytes(44) + pixel_format + bytes(20)
    return b"DDS " + struct.pack("<I", 4 + len(header)) + header


# Cases every corpus starts with, whatever the seed: (format, base, kind, mutation). They pin
# down the classes of bad file that broke reiqa before, so a seed cannot miss them.
TARGETED: list[tuple[str, str, str, Callable[[bytes], bytes]]] = [
    ("png", "gray", "colortype3-noplte", lambda d: _png_edit(d, colortype=3)),
    ("png", "palette", "chunkswap-ihdr-trns", lambda d: _png_edit(d, order=b"tRNS PLTE IHDR")),
    ("png", "palette", "chunkdropplte", lambda d: _png_edit(d, drop=b"PLTE")),
    ("png", "rgb48", "dims60000x60000", lambda d: set_dims(d, "png", 60000, 60000)),
    ("png", "rgb48", "dims0x0", lambda d: set_dims(d, "png", 0, 0)),
    ("webp", "rgba", "vp8ldims16383x16383", lambda d: set_dims(d, "webp", 16383, 16383)),
    ("webp", "rgb48", "vp8dims16383x16383", lambda d: set_dims(d, "webp", 16383, 16383)),
    ("gif", "rgb48", "screen65535x48", lambda d: set_dims(d, "gif", 65535, 48, gif_part="screen")),
    ("gif", "rgb48", "dims65535x65535", lambda d: set_dims(d, "gif", 65535, 65535)),
    ("jpeg", "rgb48", "sofdims65535x65535", lambda d: set_dims(d, "jpeg", 65535, 65535)),
    ("jpeg", "rgb48", "sofdims0x0", lambda d: set_dims(d, "jpeg", 0, 0)),
    ("tiff", "rgb48", "dims60000x60000", lambda d: set_dims(d, "tiff", 60000, 60000)),
    ("bmp", "rgb48", "dims60000x60000", lambda d: set_dims(d, "bmp", 60000, 60000)),
    ("jpeg", "rgb48", "trunc0", lambda d: b""),
    # a DDS texture named .jpg: Pillow raises NotImplementedError, which once escaped reiqa score
    ("jpeg", "rgb48", "as-dds-unknown-fourcc", lambda d: dds_unknown_fourcc()),
    *((fmt, "rgb48", "trunc16", lambda d: d[:16]) for fmt in FORMATS),
]


def make_corpus(folder: str | Path, n: int = 1000, seed: int = 0) -> list[Path]:
    """Write ``n`` mutated image files to ``folder`` (created if needed); returns their paths.

    The first files are the :data:`TARGETED` cases, the same for every seed; the rest are random.
    The files are named ``NNNN-<format>-<base>-<mutation><suffix>``; a file whose content is of another
    format than its suffix says so, e.g. ``0042-png-as-gif-valid.gif``. Every file is smaller than
    :data:`MAX_FILE_BYTES`. The same ``n`` and ``seed`` give the same names and bytes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = base_images()
    families = list(MUTATIONS)
    probs = np.array(list(MUTATIONS.values()))
    probs = probs / probs.sum()
    formats = list(FORMATS)
    paths = []
    by_name = {(b.fmt, b.name): b for b in bases}
    for i in range(n):
        if i < len(TARGETED):
            fmt, name, kind, edit = TARGETED[i]
            path = folder / f"{i:04d}-{fmt}-{name}-{kind}{FORMATS[fmt]}"
            path.write_bytes(edit(by_name[fmt, name].data))
            paths.append(path)
            continue
        base = bases[int(rng.integers(0, len(bases)))]
        family = str(rng.choice(families, p=probs))
        kind, data = mutate(base.data, base.fmt, rng, family)
        data = data[: MAX_FILE_BYTES - 1]
        label = base.fmt
        r = rng.random()
        if r < 0.08:  # content of one format under the suffix of another
            other = formats[int(rng.integers(0, len(formats)))]
            if other != base.fmt:
                label = f"{base.fmt}-as-{other}"
            suffix = FORMATS[other]
        elif r < 0.15:
            alts = _ALT_SUFFIXES[base.fmt]
            suffix = alts[int(rng.integers(0, len(alts)))]
        else:
            suffix = FORMATS[base.fmt]
        path = folder / f"{i:04d}-{label}-{base.name}-{kind}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: write a corpus and print the seed, the file count and the total size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_corpus(args.folder, n=args.n, seed=args.seed)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files ({total / 1024:.0f} KiB) to {args.folder}, seed {args.seed}")


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------------------- rarer formats

RARE_FORMATS: dict[str, str] = {
    "tga": ".tga",
    "dds": ".dds",
    "pcx": ".pcx",
    "dcx": ".dcx",
    "sgi": ".sgi",
    "sun": ".ras",
    "icns": ".icns",
    "qoi": ".qoi",
    "blp": ".blp",
    "ftex": ".ftc",
    "mpo": ".mpo",
    "msp": ".msp",
    "xbm": ".xbm",
    "xpm": ".xpm",
    "gbr": ".gbr",
    "fli": ".flc",
    "fits": ".fits",
}
"""Rarer format reiqa decodes -> the suffix its files get."""

REFUSED_FORMATS: dict[str, str] = {
    "eps": ".eps",
    "wmf": ".wmf",
    "emf": ".emf",
    "pdf": ".pdf",
    "psd": ".psd",
    "im": ".im",
}
"""Formats reiqa refuses whatever the file is named -> their suffix: by name and content
(``unsupported-format``), or, for IM (which Pillow 13 opens but deprecates), as ``not-an-image``."""

# Suffixes a variant is renamed to: a common one, another rare one, and none at all.
_OTHER_SUFFIXES = [".jpg", ".png", ".tga", ".dds", ".bin", ""]


def _fli(image: Image.Image) -> bytes:
    """A one-frame FLC animation: a 256-colour palette chunk and an uncompressed (COPY) frame."""
    palette = image.quantize(16)
    colors = bytes(palette.getpalette()[:768]).ljust(768, b"\0")
    color_chunk = struct.pack("<H", 1) + bytes(2) + colors  # one packet: skip 0, 256 colours
    chunks = [(4, color_chunk), (16, np.asarray(palette).tobytes())]
    body = b"".join(struct.pack("<IH", 6 + len(data), kind) + data for kind, data in chunks)
    frame = struct.pack("<IHH", 16 + len(body), 0xF1FA, len(chunks)) + bytes(8) + body
    header = bytearray(128)
    struct.pack_into("<IHHHHHHI", header, 0, 128 + len(frame), 0xAF12, 1, *image.size, 8, 0, 5)
    return bytes(header) + frame


def _ftex(image: Image.Image) -> bytes:
    """An uncompressed FTEX texture with one mipmap."""
    pixels = image.convert("RGB").tobytes()
    header = b"FTEX" + struct.pack("<7i", 1, *image.size, 1, 1, 1, 32)
    return header + struct.pack("<i", len(pixels)) + pixels


def _gbr(image: Image.Image) -> bytes:
    """A GIMP brush, version 2, RGBA."""
    name = b"brush\0"
    header = struct.pack(">5I", 28 + len(name), 2, *image.size, 4) + b"GIMP" + struct.pack(">I", 10)
    return header + name + image.convert("RGBA").tobytes()


def _xpm() -> bytes:
    """A 6 x 4 XPM with three colours and a transparent one."""
    rows = ["abcdab", "bcdabc", "cdabcd", "dabcda"]
    lines = ['"6 4 4 1"', '"a c #FF0000"', '"b c #00FF00"', '"c c #0000FF"', '"d c None"']
    lines += [f'"{row}"' for row in rows]
    return ("/* XPM */\nstatic char *image[] = {\n" + ",\n".join(lines) + "\n};\n").encode()


def _dcx(image: Image.Image) -> bytes:
    """A one-page DCX: the magic number, one page offset, the end of the list, a PCX."""
    return struct.pack("<III", 0x3ADE68B1, 12, 0) + _encode(image, "PCX")


def _icns(image: Image.Image) -> bytes:
    """An ICNS icon with one 16 x 16 PNG element (Pillow writes every size up to 1024 x 1024)."""
    png = _encode(image.resize((16, 16)), "PNG")
    element = b"icp4" + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(element)) + element


def _sun(image: Image.Image) -> bytes:
    """A 24-bit Sun raster (rows of BGR, an even number of bytes each)."""
    w, h = image.size
    rows = np.asarray(image.convert("RGB"))[:, :, ::-1].reshape(h, 3 * w)
    if rows.shape[1] % 2:
        rows = np.pad(rows, ((0, 0), (0, 1)))
    data = rows.tobytes()
    return struct.pack(">8I", 0x59A66A95, w, h, 24, len(data), 1, 0, 0) + data


def _fits(image: Image.Image, bitpix: int) -> bytes:
    """A FITS file with one 2-D grayscale array of ``bitpix`` (8, 16 or -32)."""
    w, h = image.size
    cards = ["SIMPLE  = " + "T".rjust(20), f"BITPIX  = {bitpix:>20}", f"NAXIS   = {2:>20}"]
    cards += [f"NAXIS1  = {w:>20}", f"NAXIS2  = {h:>20}", "END"]
    header = "".join(c.ljust(80) for c in cards).encode("ascii").ljust(2880, b" ")
    dtype = {8: ">u1", 16: ">i2", -32: ">f4"}[bitpix]
    data = np.asarray(image.convert("L")).astype(dtype).tobytes()
    return header + data.ljust(-(-len(data) // 2880) * 2880, b"\0")


def _wmf() -> bytes:
    """A placeable Windows metafile: its header, a metafile header and the end record."""
    placeable = struct.pack("<IHhhhhHI", 0x9AC6CDD7, 0, 0, 0, 160, 120, 1440, 0)
    checksum = 0
    for (word,) in struct.iter_unpack("<H", placeable[:20]):
        checksum ^= word
    meta = struct.pack("<HHHIHIH", 1, 9, 0x300, 12, 0, 3, 0) + struct.pack("<IH", 3, 0)
    return placeable + struct.pack("<H", checksum) + meta


def _emf() -> bytes:
    """An enhanced metafile: an EMR_HEADER record (" EMF" at offset 40) and EMR_EOF."""
    header = struct.pack("<II4i4i", 1, 88, 0, 0, 15, 11, 0, 0, 400, 300)
    header += b" EMF" + struct.pack("<IIIHHIII", 0x10000, 108, 2, 1, 0, 0, 0, 0)
    header += struct.pack("<4i", 1024, 768, 320, 240)
    return header + struct.pack("<5I", 14, 20, 0, 16, 20)


def _psd(image: Image.Image) -> bytes:
    """A flat RGB Photoshop document, uncompressed (Pillow does not write PSD)."""
    w, h = image.size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3) + struct.pack(">III", 0, 0, 0)
    planes = np.asarray(image.convert("RGB")).transpose(2, 0, 1).tobytes()
    return header + struct.pack(">H", 0) + planes


def rare_images() -> list[Base]:
    """One or a few small valid files of each format of :data:`RARE_FORMATS` and
    :data:`REFUSED_FORMATS` (the same every time), and the DDS texture Pillow raises
    NotImplementedError for (format ``dds``, name ``unknown-fourcc``)."""
    rng = np.random.default_rng(4242)
    rgb = Image.fromarray(_texture(rng, 12, 16, 3))
    rgba = Image.fromarray(_texture(rng, 12, 16, 4))
    gray = rgb.convert("L")
    second = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Pillow 13 deprecates IM (and still writes it)
        im = _encode(rgb, "IM")
    return [
        Base("tga", "rgb", _encode(rgb, "TGA")),
        Base("tga", "rgba-rle", _encode(rgba, "TGA", compression="tga_rle")),
        Base("tga", "palette", _encode(rgb.quantize(16), "TGA")),
        Base("dds", "rgb", _encode(rgb, "DDS")),
        Base("dds", "dxt1", _encode(rgba, "DDS", pixel_format="DXT1")),
        Base("dds", "dxt5", _encode(rgba, "DDS", pixel_format="DXT5")),
        Base("dds", "gray", _encode(gray, "DDS")),
        Base("dds", "unknown-fourcc", dds_unknown_fourcc()),
        Base("pcx", "rgb", _encode(rgb, "PCX")),
        Base("pcx", "palette", _encode(rgb.quantize(16), "PCX")),
        Base("dcx", "rgb", _dcx(rgb)),
        Base("sgi", "rgb", _encode(rgb, "SGI")),
        Base("sgi", "rgba", _encode(rgba, "SGI")),
        Base("sun", "rgb", _sun(rgb)),
        Base("icns", "png16", _icns(rgb)),
        Base("qoi", "rgb", _encode(rgb, "QOI")),
        Base("qoi", "rgba", _encode(rgba, "QOI")),
        Base("blp", "blp2", _encode(rgb.convert("P"), "BLP")),
        Base("blp", "blp1", _encode(rgb.convert("P"), "BLP", blp_version="BLP1")),
        Base("ftex", "rgb", _ftex(rgb)),
        Base("mpo", "two", _encode(rgb, "MPO", save_all=True, append_images=[second], quality=85)),
        Base("msp", "bilevel", _encode(rgb.convert("1"), "MSP")),
        Base("xbm", "bilevel", _encode(rgb.convert("1"), "XBM")),
        Base("xpm", "palette", _xpm()),
        Base("gbr", "rgba", _gbr(rgba)),
        Base("fli", "palette", _fli(rgb)),
        Base("fits", "gray8", _fits(rgb, 8)),
        Base("fits", "gray16", _fits(rgb, 16)),
        Base("fits", "float", _fits(rgb, -32)),
        Base("eps", "rgb", _encode(rgb, "EPS")),
        Base("eps", "dos-binary", struct.pack("<I", 0xC6D3D0C5) + struct.pack("<6I", 32, 0, 0, 0, 0, 0xFFFF)),
        Base("wmf", "placeable", _wmf()),
        Base("emf", "header", _emf()),
        Base("pdf", "rgb", _encode(rgb, "PDF", creationDate=None, modDate=None)),  # no dates: same bytes
        Base("psd", "rgb", _psd(rgb)),
        Base("im", "rgb", im),
    ]


def _rare_variants(base: Base, rng: np.random.Generator) -> list[tuple[str, str, bytes]]:
    """(kind, suffix, bytes) of ``base``: itself under its own suffix and under others,
    truncations at fixed and random offsets, and a few seeded header edits."""
    data, n = base.data, len(base.data)
    own = {**RARE_FORMATS, **REFUSED_FORMATS}[base.fmt]
    other = _OTHER_SUFFIXES[int(rng.integers(0, len(_OTHER_SUFFIXES)))]
    out = [("valid", own, data), ("valid", ".jpg", data), ("valid", other, data)]
    cuts = sorted({c for c in (1, 4, 16, 64, 128, n // 2, n - 1, int(rng.integers(1, n))) if 0 < c < n})
    out += [(f"trunc{c}", own, data[:c]) for c in cuts]
    for k in range(4):  # flip 1..8 bits among the first 64 bytes, where the sizes and types are
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            buf[_offset(rng, min(n, 64))] ^= 1 << int(rng.integers(0, 8))
        out.append((f"hdrflip{k}", own if k % 2 else ".jpg", bytes(buf)))
    kind, edited = overwrite(data, rng, base.fmt)
    out.append((kind, own, edited))
    field = bytearray(data)  # a run of 0xff where most headers keep sizes and counts
    start = int(rng.integers(4, max(5, min(n, 24))))
    field[start : start + 4] = b"\xff" * len(field[start : start + 4])
    out.append(("hdrff", own, bytes(field)))
    return out


def make_rare_corpus(folder: str | Path, seed: int = 0) -> list[Path]:
    """Write every variant of every :func:`rare_images` file to ``folder`` (created if needed),
    named ``NNNN-<format>-<base>-<variant><suffix>``; returns their paths. The same seed gives the
    same names and bytes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for base in rare_images():
        for kind, suffix, data in _rare_variants(base, rng):
            path = folder / f"{len(paths):04d}-{base.fmt}-{base.name}-{kind}{suffix}"
            path.write_bytes(data)
            paths.append(path)
    return paths
