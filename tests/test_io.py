from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import reiqa.io
from reiqa.errors import ImageLoadError
from reiqa.io import (
    IMAGE_SUFFIXES,
    decode_image,
    file_signature,
    load_image,
    save_image,
    to_pil,
    to_tensor,
)
from tests.fuzz_corpus import RARE_FORMATS, REFUSED_FORMATS, dds_unknown_fourcc, rare_images

T = TypeVar("T")
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _pixels(h: int = 8, w: int = 12, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _quadrants(h: int = 16, w: int = 16) -> np.ndarray:
    """(H, W, 3) uint8 with four flat colours: red, green / blue, white."""
    out = np.empty((h, w, 3), np.uint8)
    out[: h // 2, : w // 2], out[: h // 2, w // 2 :] = RED, GREEN
    out[h // 2 :, : w // 2], out[h // 2 :, w // 2 :] = BLUE, WHITE
    return out


def _smooth(h: int = 16, w: int = 16) -> np.ndarray:
    """(H, W, 3) uint8 gradients, which lossy codecs keep well."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)], -1).astype(
        np.uint8
    )


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1], the reference conversion."""
    return torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)


def _write_png16(path: Path, values: np.ndarray, color_type: int) -> None:
    """Write a 16-bit PNG by hand; Pillow cannot write 16-bit RGB. values: (H, W, C) uint16."""
    h, w = values.shape[:2]
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _check_image(t: torch.Tensor, h: int, w: int) -> None:
    assert t.shape == (3, h, w)
    assert t.dtype == torch.float32
    assert t.is_contiguous()
    assert t.min().item() >= 0.0 and t.max().item() <= 1.0


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("a.png", {}),
        ("a.bmp", {}),
        ("a.tiff", {}),
        ("a.tif", {}),
        ("a.webp", {"lossless": True}),
        ("a.ppm", {}),
        ("a.tga", {}),
        ("a.tga", {"compression": "tga_rle"}),
        ("a.pcx", {}),
        ("a.sgi", {}),
        ("a.rgb", {}),
        ("a.qoi", {}),
        ("a.dds", {}),
    ],
)
def test_lossless_formats_load_exactly(tmp_path: Path, name: str, options: dict) -> None:
    pixels = _pixels()
    Image.fromarray(pixels).save(tmp_path / name, **options)
    t = load_image(tmp_path / name)
    _check_image(t, 8, 12)
    torch.testing.assert_close(t, _as_tensor(pixels), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("name", "options"), [("a.jpg", {"quality": 95}), ("a.webp", {"quality": 90})])
def test_lossy_formats_load_close(tmp_path: Path, name: str, options: dict) -> None:
    pixels = _smooth()
    Image.fromarray(pixels).save(tmp_path / name, **options)
    t = load_image(tmp_path / name)
    _check_image(t, 16, 16)
    assert (t - _as_tensor(pixels)).abs().mean() < 0.02


_RARE = [b for b in rare_images() if b.fmt in RARE_FORMATS and b.name != "unknown-fourcc"]


@pytest.mark.parametrize("base", _RARE, ids=[f"{b.fmt}-{b.name}" for b in _RARE])
def test_rare_formats_load_whatever_their_suffix(tmp_path: Path, base) -> None:
    """TGA, DDS, PCX, SGI, ICNS, QOI, BLP, MPO, FLI, ...: found by a folder scan, and decoded by
    their content under their own suffix, another one, or none (as Pillow decodes them)."""
    from reiqa.inputs import find_images

    with Image.open(io.BytesIO(base.data)) as im:
        im.load()
        expected = to_tensor(ImageOps.exif_transpose(im))
    assert expected.shape[1] * expected.shape[2] > 1 and expected.std() > 0  # a real picture
    own = tmp_path / f"a{RARE_FORMATS[base.fmt]}"
    own.write_bytes(base.data)
    (tmp_path / "renamed.jpg").write_bytes(base.data)
    (tmp_path / "nosuffix").write_bytes(base.data)
    assert own in find_images([tmp_path]) and own.suffix in IMAGE_SUFFIXES
    for path in (own, tmp_path / "renamed.jpg", tmp_path / "nosuffix"):
        torch.testing.assert_close(load_image(path), expected, atol=0, rtol=0)
    torch.testing.assert_close(decode_image(base.data, "upload"), expected, atol=0, rtol=0)


def test_the_suffix_table_agrees_with_pillow() -> None:
    """Every suffix reiqa lists is one Pillow opens with a format reiqa lets it open; the formats
    that run programs or only work on Windows, and Photoshop, are not among them."""
    heif = {".heic", ".heif", ".hif"}
    if heif <= IMAGE_SUFFIXES:  # pillow-heif is installed: its opener is there once a HEIC is loaded
        assert reiqa.io._heif_opener_registered() and "HEIF" in reiqa.io.open_formats()
    formats = reiqa.io.open_formats()
    pillow = Image.registered_extensions()
    for suffix in IMAGE_SUFFIXES - heif:
        assert pillow.get(suffix) in (*formats, "MPO"), suffix  # MPO is opened by JPEG's opener
    assert {".tga", ".dds", ".pcx", ".sgi", ".qoi", ".icns", ".blp", ".mpo", ".xbm", ".flc"} <= IMAGE_SUFFIXES
    assert not {"EPS", "WMF", "PSD", "PDF", "IM", "MPEG", "SPIDER"} & set(formats)
    assert not IMAGE_SUFFIXES & reiqa.io.UNSUPPORTED_SUFFIXES
    assert {".eps", ".wmf", ".emf", ".psd"} <= reiqa.io.UNSUPPORTED_SUFFIXES


@pytest.mark.parametrize(
    ("fmt", "cause"),
    [
        ("eps", "PostScript is not decoded (it would run Ghostscript); convert it to PNG first"),
        ("wmf", "Windows metafiles (WMF/EMF) are not decoded"),
        ("emf", "Windows metafiles (WMF/EMF) are not decoded"),
        ("pdf", "PDF documents are not decoded"),
    ],
)
def test_postscript_and_metafiles_are_refused_without_running_a_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, cause: str
) -> None:
    from PIL import EpsImagePlugin

    data = next(b.data for b in rare_images() if b.fmt == fmt)
    spawned: list[object] = []

    def spawn(*args: object, **kwargs: object) -> None:
        spawned.append(args)
        raise OSError("spawned a program")

    monkeypatch.setattr(subprocess, "Popen", spawn)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs")  # as if Ghostscript were installed
    if fmt == "eps":  # Pillow alone identifies it by content whatever its name, then runs Ghostscript
        with Image.open(io.BytesIO(data)) as im, pytest.raises(OSError, match="spawned a program"):
            im.load()
        assert spawned
        spawned.clear()
    for name in (f"drawing{REFUSED_FORMATS[fmt]}", "photo.jpg", "photo"):
        (tmp_path / name).write_bytes(data)
        err = _load_error(tmp_path / name)
        assert err.reason == "unsupported-format" and cause in str(err)
    with pytest.raises(ImageLoadError, match=cause.split(" (")[0]):
        decode_image(data, "photo.png")
    # without the check of its first bytes, Pillow still is not allowed to take it for its format
    monkeypatch.setattr(reiqa.io, "_refused_content", lambda head: None)
    assert _load_error(tmp_path / "photo.jpg").reason == "not-an-image"
    assert not spawned


def test_gif_loads_exactly(tmp_path: Path) -> None:
    pixels = _quadrants()  # four colours, so the palette holds them exactly
    Image.fromarray(pixels).save(tmp_path / "a.gif")
    torch.testing.assert_close(load_image(tmp_path / "a.gif"), _as_tensor(pixels), atol=1e-6, rtol=0)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 4), c) for c in (RED, GREEN, BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(tmp_path / "anim.gif").n_frames == 3
    t = load_image(tmp_path / "anim.gif")
    _check_image(t, 4, 6)
    torch.testing.assert_close(t, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 6))


def test_16bit_grayscale_png_keeps_precision(tmp_path: Path) -> None:
    values = np.array([[1, 1000, 30001], [40000, 65534, 65535]], dtype=np.uint16)
    assert (values % 257 != 0).sum() == 5  # not on the 8-bit grid
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    t = load_image(tmp_path / "g16.png")
    _check_image(t, 2, 3)
    expected = torch.from_numpy(values.astype(np.float64) / 65535).float()
    for c in range(3):
        torch.testing.assert_close(t[c], expected, atol=1e-7, rtol=0)
    eight_bit = torch.round(expected * 255) / 255
    assert (t[0] - eight_bit).abs().max() > 1e-3


def test_16bit_rgb_png_is_reduced_to_8_bits_by_pillow(tmp_path: Path) -> None:
    # Documented limitation: Pillow opens 16-bit RGB PNGs as 8-bit "RGB".
    values = np.array([[[1000, 30000, 65535], [871, 5, 60000]]], dtype=np.uint16)
    _write_png16(tmp_path / "rgb16.png", values, color_type=2)
    t = load_image(tmp_path / "rgb16.png")
    _check_image(t, 1, 2)
    levels = t * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)  # on the 8-bit grid
    true = torch.from_numpy(values.astype(np.float32) / 65535).permute(2, 0, 1)
    assert (t - true).abs().max() <= 1 / 255 + 1e-6


def test_16bit_pgm_mode_i_is_divided_by_65535(tmp_path: Path) -> None:
    values = np.array([[7, 1000], [2000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.pgm")
    assert Image.open(tmp_path / "g16.pgm").mode == "I"
    t = load_image(tmp_path / "g16.pgm")
    torch.testing.assert_close(t[1], torch.from_numpy(values / 65535).float(), atol=1e-7, rtol=0)


def test_float_tiff_is_on_pillow_0_255_scale_and_clamped(tmp_path: Path) -> None:
    Image.fromarray(np.array([[127.5, 300.0, -4.0]], dtype=np.float32)).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    torch.testing.assert_close(load_image(tmp_path / "f.tif")[2], torch.tensor([[0.5, 1.0, 0.0]]))


def test_grayscale_l_and_1(tmp_path: Path) -> None:
    gray = np.array([[0, 10, 128], [200, 254, 255]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "l.png")
    t = load_image(tmp_path / "l.png")
    _check_image(t, 2, 3)
    for c in range(3):
        torch.testing.assert_close(t[c], torch.from_numpy(gray / 255).float())
    Image.fromarray(gray > 100).save(tmp_path / "bw.png")
    assert Image.open(tmp_path / "bw.png").mode == "1"
    torch.testing.assert_close(
        load_image(tmp_path / "bw.png")[0], torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    )


@pytest.mark.parametrize("name", ["cmyk.tif", "cmyk.jpg"])
def test_cmyk_converts_to_rgb(tmp_path: Path, name: str) -> None:
    im = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # no cyan/black, full magenta + yellow: red
    im.paste((0, 0, 0, 255), (8, 0, 16, 8))  # full black
    im.save(tmp_path / name)
    assert Image.open(tmp_path / name).mode == "CMYK"
    t = load_image(tmp_path / name)
    _check_image(t, 8, 16)
    tol = 0 if name.endswith(".tif") else 0.03
    torch.testing.assert_close(
        t[:, :, :8], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 8, 8), atol=tol, rtol=0
    )
    assert t[:, :, 8:].max() <= tol


def test_palette_without_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (3, 1))
    im.putpalette([*RED, *GREEN, *BLUE])
    im.putdata([2, 0, 1])
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    expected = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]).view(3, 1, 3)
    torch.testing.assert_close(load_image(tmp_path / "p.png"), expected)


@pytest.mark.parametrize("name", ["p.png", "p.gif"])
def test_palette_with_transparency_is_composited(tmp_path: Path, name: str) -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([*RED, *BLUE])
    im.putdata([0, 1])
    im.save(tmp_path / name, transparency=1)
    assert Image.open(tmp_path / name).mode == "P"
    on_white = load_image(tmp_path / name)
    torch.testing.assert_close(on_white[:, 0, 0], torch.tensor([1.0, 0, 0]))
    torch.testing.assert_close(on_white[:, 0, 1], torch.tensor([1.0, 1, 1]))
    on_grey = load_image(tmp_path / name, background=(0.25, 0.5, 0.75))
    torch.testing.assert_close(on_grey[:, 0, 1], torch.tensor([0.25, 0.5, 0.75]))


def test_rgba_composited_on_white_and_custom_background(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 0, 255], [200, 100, 0, 51], [10, 20, 30, 0]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    rgb = rgba[..., :3].astype(np.float64) / 255
    a = rgba[..., 3:].astype(np.float64) / 255
    for bg in [(1.0, 1.0, 1.0), (0.2, 0.4, 0.6)]:
        kwargs = {} if bg == (1.0, 1.0, 1.0) else {"background": bg}
        t = load_image(tmp_path / "rgba.png", **kwargs)
        _check_image(t, 1, 3)
        expected = torch.from_numpy(a * rgb + (1 - a) * np.array(bg)).float().permute(2, 0, 1)
        torch.testing.assert_close(t, expected, atol=1e-6, rtol=0)
    # spot-check by hand: alpha 51/255 = 0.2, so G = 0.2 * 100/255 + 0.8 * 0.4
    assert load_image(tmp_path / "rgba.png", background=(0.2, 0.4, 0.6))[1, 0, 1].item() == pytest.approx(
        0.2 * 100 / 255 + 0.8 * 0.4, abs=1e-6
    )


def test_la_composited(tmp_path: Path) -> None:
    la = np.array([[[100, 255], [100, 0], [255, 102]]], dtype=np.uint8)
    Image.frombytes("LA", (3, 1), la.tobytes()).save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    t = load_image(tmp_path / "la.png", background=(0.0, 0.5, 1.0))
    torch.testing.assert_close(t[:, 0, 0], torch.full((3,), 100 / 255))
    torch.testing.assert_close(t[:, 0, 1], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(t[:, 0, 2], 0.4 * 1.0 + 0.6 * torch.tensor([0.0, 0.5, 1.0]))


@pytest.mark.parametrize(
    ("mode", "color", "expected"),
    [
        ("PA", (0, 0), (1.0, 1.0, 1.0)),  # palette index 0 fully transparent
        ("La", (100, 255), (100 / 255,) * 3),
        ("RGBa", (64, 32, 0, 255), (64 / 255, 32 / 255, 0.0)),
        ("RGBa", (64, 32, 0, 128), (190.75 / 255, 158.6 / 255, 127 / 255)),  # unpremultiplied, on white
        ("RGBX", (64, 32, 0, 9), (64 / 255, 32 / 255, 0.0)),
        ("YCbCr", (76, 85, 255), (1.0, 0.0, 0.0)),
        ("HSV", (0, 255, 255), (1.0, 0.0, 0.0)),
    ],
)
def test_to_tensor_other_modes(mode: str, color: tuple, expected: tuple) -> None:
    t = to_tensor(Image.new(mode, (2, 1), color))
    _check_image(t, 1, 2)
    torch.testing.assert_close(t[:, 0, 0], torch.tensor(expected), atol=2 / 255, rtol=0)


@pytest.mark.parametrize("name", ["o.jpg", "o.png"])
def test_exif_orientation_is_applied(tmp_path: Path, name: str) -> None:
    stored = np.empty((2, 4, 3), np.uint8)  # 4 wide, 2 tall
    stored[0, :2], stored[0, 2:], stored[1, :2], stored[1, 2:] = RED, GREEN, BLUE, WHITE
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(
        tmp_path / name, exif=exif, **({"quality": 100, "subsampling": 0} if name.endswith(".jpg") else {})
    )
    t = load_image(tmp_path / name)
    _check_image(t, 4, 2)  # 2 wide, 4 tall
    expected = _as_tensor(np.ascontiguousarray(np.rot90(stored, k=-1)))
    # the top row shows the stored left column read bottom to top: blue, red
    torch.testing.assert_close(expected[:, 0, 0], torch.tensor([0.0, 0, 1]))
    torch.testing.assert_close(expected[:, 0, 1], torch.tensor([1.0, 0, 0]))
    torch.testing.assert_close(t, expected, atol=0.05 if name.endswith(".jpg") else 1e-6, rtol=0)


@pytest.mark.parametrize("name", ["o.jpg", "o.png", "o.webp", "o.gif", "o.tiff"])
def test_decode_image_from_memory_equals_load_image(tmp_path: Path, name: str) -> None:
    """Uploads (reiqa serve) are decoded from bytes with the file path's decoders and checks."""
    im = Image.fromarray(_pixels(9, 13, seed=4))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / name, **({"exif": exif} if name.endswith((".jpg", ".png", ".webp")) else {}))
    data = (tmp_path / name).read_bytes()
    from_file = load_image(tmp_path / name)
    torch.testing.assert_close(
        decode_image(data, "upload.bin"), from_file, atol=0, rtol=0
    )  # no suffix needed
    if name in ("o.jpg", "o.png", "o.webp"):
        assert from_file.shape[1:] == (13, 9)  # the orientation was applied


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "e.png", "empty"),
        (b"plain text", "t.jpg", "not-an-image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "v.png", "unsupported-format"),
        (None, "cut.png", "truncated"),
        (None, "huge.png", "too-many-pixels"),
    ],
)
def test_decode_image_errors_name_the_upload(
    tmp_path: Path, data: bytes | None, name: str, reason: str
) -> None:
    Image.fromarray(_pixels(40, 40)).save(tmp_path / "ok.png")
    whole = (tmp_path / "ok.png").read_bytes()
    if data is None:
        data = whole[: len(whole) // 2] if name == "cut.png" else whole
    with pytest.raises(ImageLoadError) as info:
        decode_image(data, name, max_pixels=100 if name == "huge.png" else 10_000)
    assert info.value.reason == reason
    assert str(info.value).startswith(f"{name}: ")


def test_one_pixel_image(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "1.png")
    t = load_image(tmp_path / "1.png")
    _check_image(t, 1, 1)
    torch.testing.assert_close(t.flatten(), torch.tensor([10, 20, 30]) / 255)


# --- failures --------------------------------------------------------------------------------


def _load_error(path: Path, **kwargs: object) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    assert str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value, ValueError)
    assert info.value.path == path
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    err = _load_error(tmp_path / "nope.png")
    assert err.reason == "missing"
    assert "no such file" in str(err)


def test_directory_named_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").mkdir()
    err = _load_error(tmp_path / "x.jpg")
    assert err.reason == "not-a-file"
    assert "directory" in str(err)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    err = _load_error(tmp_path / "e.png")
    assert err.reason == "empty"
    assert "0 bytes" in str(err)


def test_truncated_jpeg(tmp_path: Path) -> None:
    Image.fromarray(_pixels(32, 32)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    err = _load_error(tmp_path / "cut.jpg")
    assert err.reason == "truncated"
    assert "truncated" in str(err)
    assert isinstance(err.__cause__, OSError)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("hello, not a picture\n")
    err = _load_error(tmp_path / "notes.jpg")
    assert err.reason == "not-an-image"
    assert err.__cause__ is not None


def test_undecodable_data_is_unreadable(tmp_path: Path) -> None:
    Image.fromarray(_pixels(32, 32)).save(tmp_path / "full.webp")
    data = (tmp_path / "full.webp").read_bytes()
    (tmp_path / "cut.webp").write_bytes(data[: len(data) // 2])  # WebP reports no "truncated"
    err = _load_error(tmp_path / "cut.webp")
    assert err.reason == "unreadable"
    assert "OSError" in str(err)
    assert isinstance(err.__cause__, OSError)


def test_any_decoder_exception_is_the_files_error(tmp_path: Path) -> None:
    # a DDS texture named .jpg: Pillow's DDS plugin accepts it, then raises NotImplementedError
    data = dds_unknown_fourcc()
    with pytest.raises(NotImplementedError):
        Image.open(io.BytesIO(data))
    (tmp_path / "texture.jpg").write_bytes(data)
    err = _load_error(tmp_path / "texture.jpg")
    assert err.reason == "unreadable"
    assert "NotImplementedError: Unimplemented pixel format" in str(err)
    assert isinstance(err.__cause__, NotImplementedError)


def test_any_decoder_exception_is_the_uploads_error() -> None:
    with pytest.raises(ImageLoadError) as info:
        decode_image(dds_unknown_fourcc(), "texture.jpg")
    assert info.value.reason == "unreadable" and info.value.path == "texture.jpg"
    assert str(info.value).startswith("texture.jpg: Pillow could not decode it (NotImplementedError: ")
    assert isinstance(info.value.__cause__, NotImplementedError)


@pytest.mark.parametrize("stage", ["open", "convert"])
def test_an_exception_while_opening_or_converting_names_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "a.png")

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("no such tag")

    monkeypatch.setattr(
        *((Image, "open") if stage == "open" else (reiqa.io.ImageOps, "exif_transpose")), broken
    )
    err = _load_error(tmp_path / "a.png")
    assert err.reason == "unreadable" and "(KeyError: 'no such tag')" in str(err)


def test_an_interrupt_while_decoding_is_not_the_files_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "a.png")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(reiqa.io.ImageOps, "exif_transpose", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_image(tmp_path / "a.png")


def test_unsupported_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every mode Pillow can produce is supported, so take "L" off the list to reach this path.
    monkeypatch.setattr(reiqa.io, "SUPPORTED_MODES", reiqa.io.SUPPORTED_MODES - {"L"})
    Image.new("L", (2, 2)).save(tmp_path / "l.png")
    err = _load_error(tmp_path / "l.png")
    assert err.reason == "unsupported-mode"
    assert "'L'" in str(err)
    with pytest.raises(ValueError, match="unsupported image mode 'L'"):
        to_tensor(Image.new("L", (2, 2)))


def test_too_many_pixels_and_raising_the_limit(tmp_path: Path) -> None:
    Image.fromarray(_pixels(10, 20)).save(tmp_path / "big.png")
    err = _load_error(tmp_path / "big.png", max_pixels=199)
    assert err.reason == "too-many-pixels"
    assert "20x10" in str(err) and "199" in str(err)
    assert "max_pixels" in str(err) and "--max-pixels" in str(err)
    _check_image(load_image(tmp_path / "big.png", max_pixels=200), 10, 20)
    _check_image(load_image(tmp_path / "big.png", max_pixels=None), 10, 20)


@pytest.mark.parametrize("name", ["big.png", "big.tif"])  # TIFF checks Pillow's limit again while decoding
def test_pillow_limit_neither_fires_first_nor_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow: warning over 50, error over 100
    Image.fromarray(_pixels(12, 12)).save(tmp_path / name)  # 144 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_image(load_image(tmp_path / name), 12, 12)
        _check_image(load_image(tmp_path / name, max_pixels=144), 12, 12)
        assert _load_error(tmp_path / name, max_pixels=143).reason == "too-many-pixels"
        assert _load_error(tmp_path / name, max_pixels=10).reason == "too-many-pixels"
    assert Image.MAX_IMAGE_PIXELS == 50


def test_bad_arguments(tmp_path: Path) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="background"):
        load_image(tmp_path / "a.png", background=(0.0, 2.0, 0.0))
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(tmp_path / "a.png", max_pixels=0)


# --- saving ----------------------------------------------------------------------------------


def test_save_png_round_trip_and_parent_dirs(tmp_path: Path) -> None:
    x = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    out = save_image(x, tmp_path / "new" / "dir" / "x.png")
    assert out == tmp_path / "new" / "dir" / "x.png"
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.png"]  # no temporary file left
    y = load_image(out)
    assert (y - x).abs().max() <= 0.5 / 255 + 1e-6
    # already on the 8-bit grid: exact
    q = torch.round(x * 255) / 255
    torch.testing.assert_close(load_image(save_image(q, tmp_path / "q.png")), q, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["x.jpg", "x.JPEG", "x.webp", "x.bmp", "x.tif", "x.tiff"])
def test_save_formats_by_suffix(tmp_path: Path, name: str) -> None:
    x = _as_tensor(_smooth())
    save_image(x, tmp_path / name, quality=90)
    expected_format = {
        "jpg": "JPEG",
        "jpeg": "JPEG",
        "webp": "WEBP",
        "bmp": "BMP",
        "tif": "TIFF",
        "tiff": "TIFF",
    }
    assert Image.open(tmp_path / name).format == expected_format[name.split(".")[1].lower()]
    assert (load_image(tmp_path / name) - x).abs().mean() < 0.02
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_save_overwrites_and_leaves_no_temp_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.png"
    save_image(torch.zeros(3, 2, 2), path)
    save_image(torch.ones(3, 2, 2), path)
    assert load_image(path).min().item() == 1.0

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.zeros(3, 2, 2), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    assert load_image(path).min().item() == 1.0  # the old file is intact


def test_save_gives_a_new_file_the_usual_permissions_and_keeps_an_existing_ones(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        new = save_image(torch.zeros(3, 2, 2), tmp_path / "new.png")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644  # 0o666 less the umask, not mkstemp's 0o600
    new.chmod(0o600)
    save_image(torch.ones(3, 2, 2), new)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600 and load_image(new).min().item() == 1.0


def test_save_rejects_unknown_suffix_and_bad_quality(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"x\.gif.*\.png.*\.jpg"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="quality"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.jpg", quality=0)
    assert list(tmp_path.iterdir()) == []


def test_save_quality_reaches_the_encoder(tmp_path: Path) -> None:
    x = _as_tensor(_pixels(32, 32))
    for suffix in (".jpg", ".webp"):
        low = save_image(x, tmp_path / f"low{suffix}", quality=10).stat().st_size
        high = save_image(x, tmp_path / f"high{suffix}", quality=95).stat().st_size
        assert low < high


# --- tensor <-> PIL --------------------------------------------------------------------------


def test_to_pil_to_tensor_round_trip() -> None:
    x = torch.randint(0, 256, (3, 6, 5), generator=torch.Generator().manual_seed(1)).float() / 255
    im = to_pil(x)
    assert im.mode == "RGB" and im.size == (5, 6)
    torch.testing.assert_close(to_tensor(im), x, atol=1e-6, rtol=0)
    pixels = np.asarray(to_pil(torch.tensor([-0.5, 1.5, 0.6 / 255]).view(3, 1, 1)))
    assert pixels.tolist() == [[[0, 255, 1]]]  # clamped and rounded


def test_to_pil_accepts_any_device(device: torch.device) -> None:
    x = torch.tensor([0.0, 0.5, 1.0], device=device).view(3, 1, 1).expand(3, 2, 2)
    assert np.asarray(to_pil(x))[1, 1].tolist() == [0, 128, 255]


def test_to_pil_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_pil(torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError, match="floating"):
        to_pil(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_image_suffixes_are_lower_case() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


# --- odd files: links, pipes, formats not decoded, HEIC/AVIF, decoder warnings ---------------

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


def _in_thread(fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Run ``fn`` in a daemon thread; fail (instead of hanging) if it blocks, e.g. on a FIFO."""
    out: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"blocked for over {timeout} s"
    if errors:
        raise errors[0]
    return out[0]


def test_broken_symbolic_link(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
    err = _load_error(tmp_path / "link.jpg")
    assert err.reason == "missing"
    assert "broken symbolic link" in str(err) and "gone.jpg" in str(err)


def test_symbolic_link_loop(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    err = _load_error(tmp_path / "a.png")
    assert err.reason == "unreadable"
    assert "symbolic link loop" in str(err)


@needs_fifo
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    err = _in_thread(lambda: _load_error(tmp_path / "pipe.png"))
    assert err.reason == "not-a-file"
    assert "named pipe" in str(err)
    assert _in_thread(lambda: file_signature(tmp_path / "pipe.png")) is None


@pytest.mark.parametrize(
    ("name", "data", "cause"),
    [
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            "SVG is a vector format; convert it to PNG",
        ),
        ("drawing", b'\xef\xbb\xbf<?xml version="1.0"?>\n<svg/>', "SVG is a vector format"),  # by content
        ("icon.SVGZ", b"\x1f\x8b\x08\x00", "SVG is a vector format"),
        ("layers.psd", b"8BPS\x00\x01" + bytes(30), "Photoshop"),
        ("photo.jxl", b"\xff\x0a\xfa\x7f", "JPEG XL"),
    ],
)
def test_image_formats_not_decoded_are_refused(tmp_path: Path, name: str, data: bytes, cause: str) -> None:
    (tmp_path / name).write_bytes(data)
    err = _load_error(tmp_path / name)
    assert err.reason == "unsupported-format"
    assert cause in str(err)


def test_camera_raw_is_refused_though_pillow_would_read_its_tiff_preview(tmp_path: Path) -> None:
    Image.fromarray(_pixels()).save(tmp_path / "dsc.tif")
    (tmp_path / "dsc.tif").rename(tmp_path / "DSC.NEF")
    err = _load_error(tmp_path / "DSC.NEF")
    assert err.reason == "unsupported-format"
    assert "camera raw" in str(err)


def _heic_or_skip(path: Path, pixels: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is not installed")
    try:
        pillow_heif.from_pillow(Image.fromarray(pixels)).save(path, quality=90)
    except Exception as exc:  # a libheif built without an HEVC encoder
        pytest.skip(f"pillow-heif cannot encode HEIC here: {exc}")


@pytest.mark.parametrize("name", ["a.heic", "a.HEIF", "renamed.dat"])  # .dat: found by its ftyp box
def test_heic_loads(tmp_path: Path, name: str) -> None:
    pixels = _smooth()
    _heic_or_skip(tmp_path / name, pixels)
    assert file_signature(tmp_path / name) == "heif"
    t = load_image(tmp_path / name)
    _check_image(t, 16, 16)
    assert (t - _as_tensor(pixels)).abs().mean() < 0.05
    assert {".heic", ".heif", ".hif"} <= IMAGE_SUFFIXES


def test_heic_without_pillow_heif_is_refused_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(8))
    monkeypatch.setattr(reiqa.io, "_heif_ready", None)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails
    err = _load_error(tmp_path / "a.heic")
    assert err.reason == "unsupported-format"
    assert "HEIC needs the pillow-heif package (pip install pillow-heif)" in str(err)


def test_avif_loads(tmp_path: Path) -> None:
    pixels = _smooth()
    try:
        Image.fromarray(pixels).save(tmp_path / "a.avif", format="AVIF", quality=90)
    except (KeyError, OSError, ValueError) as exc:
        pytest.skip(f"Pillow cannot encode AVIF here: {exc!r}")
    assert file_signature(tmp_path / "a.avif") == "avif"
    t = load_image(tmp_path / "a.avif")
    _check_image(t, 16, 16)
    assert (t - _as_tensor(pixels)).abs().mean() < 0.05
    assert ".avif" in IMAGE_SUFFIXES


def test_avif_without_decoder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.avif").write_bytes(b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1avif" + bytes(8))
    monkeypatch.setattr(reiqa.io, "_AVIF_AVAILABLE", False)
    err = _load_error(tmp_path / "a.avif")
    assert err.reason == "unsupported-format"
    assert "AVIF needs Pillow built with libavif" in str(err)


def test_ico_loads(tmp_path: Path) -> None:
    Image.fromarray(_quadrants()).save(tmp_path / "a.ico")
    torch.testing.assert_close(load_image(tmp_path / "a.ico"), _as_tensor(_quadrants()), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00", "png"),
        (b"GIF89a\x01\x00", "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"BM" + bytes(4) + bytes(4) + b"\x36\x00\x00\x00" + b"\x28\x00\x00\x00", "bmp"),
        (b"BM is not a bitmap, just text that starts like one", None),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "avif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", None),  # an MP4 video
        (b"<svg/>", "svg"),
        (b"<?xml version='1.0'?><note/>", None),
        (b"hello", None),
    ],
)
def test_file_signature(tmp_path: Path, head: bytes, kind: str | None) -> None:
    (tmp_path / "f").write_bytes(head)
    assert file_signature(tmp_path / "f") == kind
    assert file_signature(tmp_path / "missing") is None
    assert file_signature(tmp_path) is None


def _jpeg_with_corrupt_exif(path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Maker", "Model", 1
    buf = io.BytesIO()
    Image.fromarray(_smooth()).save(buf, format="JPEG", exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    tiff = data.index(b"Exif\x00\x00") + 6
    data[tiff + 8 : tiff + 10] = b"\xff\x7f"  # the first IFD claims 32767 entries
    path.write_bytes(bytes(data))


def test_decoder_warnings_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad exif.jpg"
    _jpeg_with_corrupt_exif(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _check_image(load_image(path), 16, 16)
    assert [w.category for w in caught] == [UserWarning]
    assert str(caught[0].message).startswith(f"{path}: Corrupt EXIF data")
    assert caught[0].filename == __file__  # raised from the caller of load_image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="bad exif"):  # the caller's filters apply
            load_image(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _load_error(path, max_pixels=10).reason == "too-many-pixels"
    # raised while the header was read, and raised again though loading failed
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{path}: Corrupt EXIF data")


def test_loading_in_threads_leaves_the_warnings_machinery_as_it_was(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "bad exif.jpg"
    _jpeg_with_corrupt_exif(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters, show = list(warnings.filters), warnings.showwarning
        with ThreadPoolExecutor(8) as pool:
            assert all(t.shape == (3, 16, 16) for t in pool.map(lambda _: load_image(path), range(32)))
        assert warnings.filters == filters and warnings.showwarning is show
    assert len(caught) == 32 and all(str(w.message).startswith(f"{path}: ") for w in caught)


def test_a_name_with_a_newline_cannot_forge_a_line_of_an_error_or_a_warning(tmp_path: Path) -> None:
    from reiqa.errors import printable

    bad = tmp_path / "x.jpg\nERROR everything failed\u202e.jpg"
    bad.write_text("not a picture")
    with pytest.raises(ImageLoadError) as info:
        load_image(bad)
    assert info.value.path == bad  # the raw path, for whoever needs the file
    text = str(info.value)
    assert len(text.splitlines()) == 1 and "\u202e" not in text
    assert text.startswith(f"{printable(bad)}: ") and "x.jpg\\nERROR" in text

    with pytest.raises(ImageLoadError) as info:
        decode_image(b"junk", "upload.png\nFORGED: log line")
    assert info.value.path == "upload.png\nFORGED: log line"
    assert str(info.value).startswith("upload.png\\nFORGED: log line: ")

    exif = tmp_path / "bad exif\n.jpg"
    _jpeg_with_corrupt_exif(exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(exif)
        decode_image(exif.read_bytes(), "upload\r\nFORGED.jpg")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all(len(m.splitlines()) == 1 for m in messages)
    assert messages[0].startswith(f"{printable(exif)}: Corrupt EXIF data")
    assert messages[1].startswith("upload\\r\\nFORGED.jpg: Corrupt EXIF data")


def test_image_size_reads_the_header_as_decode_image_opens_it() -> None:
    """The size without decoding: of a small PNG; of a header past Pillow's own bomb limit (the
    size is wanted whatever it is, and Pillow's limit is restored); None for bytes that
    decode_image refuses before their pixels (junk, EPS content named .jpg)."""
    buffer = io.BytesIO()
    Image.new("RGB", (37, 21)).save(buffer, "PNG")
    assert reiqa.io.image_size(buffer.getvalue(), "a.png") == (37, 21)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 40000, 30000, 8, 2, 0, 0, 0)  # 1.2e9 pixels, 8-bit RGB
    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    limit = Image.MAX_IMAGE_PIXELS
    assert reiqa.io.image_size(huge, "big.png") == (40000, 30000)
    assert limit == Image.MAX_IMAGE_PIXELS
    assert reiqa.io.image_size(b"not an image at all", "x.jpg") is None
    assert reiqa.io.image_size(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "photo.jpg") is None
