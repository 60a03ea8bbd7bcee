"""Distortions for a person to look at: contact sheets (every type as a row, every level as a
column), one distorted copy of a file, the catalogue as a table."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from reiqa import distortions
from reiqa.distortions import CATALOG, NUM_LEVELS, issues
from reiqa.io import DEFAULT_MAX_PIXELS, load_image, save_image, save_pil, to_pil
from reiqa.resize import center_crop
from reiqa.runtime import pick_device

LABEL_WIDTH = 230
HEADER_HEIGHT = 28
GAP = 4


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def distortion_sheet(
    image: Tensor,
    *,
    tile: int = 160,
    types: list[int] | None = None,
    compat: bool = False,
    generator: torch.Generator | None = None,
) -> Image.Image:
    """Render a labelled grid: one row per type, the original then L0..L4 as columns.

    Each version is made from the whole image and shown as its centre ``tile`` x ``tile`` crop
    at 1:1, so that noise and blur stay visible.

    Args:
        image: (3, H, W) float in [0, 1], any device.
        tile: side of each shown crop in px.
        types: the type ids to show, in order (all 26 by default).
        compat: render the official behaviour instead of the fixed one.
        generator: for the random types; a fixed seed gives the same sheet.
    """
    types = list(CATALOG) if types is None else types
    original = center_crop(image, tile)
    th, tw = original.shape[-2:]
    cols = NUM_LEVELS + 1
    width = LABEL_WIDTH + cols * (tw + GAP)
    height = HEADER_HEIGHT + len(types) * (th + GAP)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font, small = _font(15), _font(12)
    header = ["original"] + [f"L{lv}" for lv in range(NUM_LEVELS)]
    for c, text in enumerate(header):
        draw.text((LABEL_WIDTH + c * (tw + GAP) + 4, 6), text, fill=(0, 0, 0), font=font)
    batch = image.unsqueeze(0).expand(NUM_LEVELS, -1, -1, -1)
    for r, type_id in enumerate(types):
        spec = CATALOG[type_id]
        y = HEADER_HEIGHT + r * (th + GAP)
        draw.text((6, y + 4), f"{spec.id:2d} {spec.name}", fill=(0, 0, 0), font=font)
        draw.text((6, y + 24), spec.parameter, fill=(90, 90, 90), font=small)
        versions = distortions.apply(
            batch, type_id, torch.arange(NUM_LEVELS), generator=generator, compat=compat
        )
        row = [original, *center_crop(versions, tile).unbind(0)]
        for c, tile_image in enumerate(row):
            x = LABEL_WIDTH + c * (tw + GAP)
            sheet.paste(to_pil(tile_image), (x, y))
            if c > 0:
                value = spec.levels[c - 1]
                draw.text(
                    (x + 3, y + th - 15),
                    f"{value:g}",
                    fill=(255, 255, 0),
                    font=small,
                    stroke_width=1,
                    stroke_fill=(0, 0, 0),
                )
    return sheet


def distort_file(
    image: Path,
    output: Path,
    *,
    type_: str | None = None,
    level: int = 2,
    sheet: bool = False,
    tile: int = 160,
    compat: bool = False,
    seed: int = 0,
    device: str = "cpu",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Path:
    """``reiqa distort``: write ``image`` with one distortion (``type_`` at ``level``), or its
    contact sheet (``sheet=True``), to ``output`` (atomically). Seeded: the same call gives the
    same file."""
    if sheet == (type_ is not None):
        raise ValueError("give exactly one of a distortion type or sheet=True")
    dev = pick_device(device)
    x = load_image(image, max_pixels=max_pixels).to(dev)
    generator = torch.Generator(dev).manual_seed(seed)
    if sheet:
        return save_pil(distortion_sheet(x, tile=tile, compat=compat, generator=generator), output)
    spec = distortions.get(type_)
    y = distortions.apply(x.unsqueeze(0), spec.id, level, generator=generator, compat=compat)[0]
    return save_image(y, output)


def catalogue_table() -> str:
    """The distortion catalogue as a fixed-width text table (``reiqa distort --list``), with the
    issue each type is to ``reiqa diagnose`` (``reiqa.distortions.issues``)."""
    lines = [f"{'id':>2}  {'name':<21} {'family':<11} {'issue':<11} {'parameter':<30} levels L0..L4"]
    for spec in CATALOG.values():
        levels = ", ".join(f"{v:g}" for v in spec.levels)
        kinds = f"{spec.family:<11} {issues.TABLE[spec.name].issue:<11}"
        lines.append(f"{spec.id:>2}  {spec.name:<21} {kinds} {spec.parameter:<30} {levels}")
    return "\n".join(lines)
