"""Contact sheets: every distortion type (rows) at every level (columns), for a person to look at."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from reiqa import distortions
from reiqa.distortions import CATALOG, NUM_LEVELS
from reiqa.io import to_pil

LABEL_WIDTH = 230
HEADER_HEIGHT = 28
GAP = 4


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _center_crop(images: Tensor, tile: int) -> Tensor:
    h, w = images.shape[-2:]
    th, tw = min(tile, h), min(tile, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return images[..., top : top + th, left : left + tw]


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
    original = _center_crop(image, tile)
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
        row = [original, *_center_crop(versions, tile).unbind(0)]
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
