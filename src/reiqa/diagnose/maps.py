"""Where a photo's quality is worst: the model's score on overlapping crops, blended into a map the
size of the photo and laid over it (``reiqa diagnose --map DIR``).

The crops (a third of the shorter side, at least 64 px, overlapping by half) go through the
scoring pipeline together (``ReIQA.score_batch``: one batch of one size for the encoders). Each
crop's score is spread over its window with a tent weight (largest at its centre), and every
pixel gets the weighted mean of the crops that cover it: a smooth map without block edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from reiqa.extras import require
from reiqa.inference import ReIQA
from reiqa.plots import new_figure, save_figure

__all__ = ["MIN_CROP", "QualityMap", "crop_positions", "quality_map", "write_map"]

MIN_CROP = 64
#: what needs the plots extra here
MAPS = "reiqa diagnose --map"


@dataclass(frozen=True)
class QualityMap:
    """The crop scores of one photo and the map blended from them.

    Attributes:
        crop: the crops' side (px).
        ys, xs: the crops' top rows and left columns (the grid is every (y, x) pair).
        scores: (len(ys), len(xs)) float64: each crop's score (NaN where the model gave none).
        values: (H, W) float32: the blended map, the photo's size.
    """

    crop: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    scores: np.ndarray
    values: np.ndarray

    def worst(self) -> tuple[int, int]:
        """(y, x) of the crop with the lowest score."""
        i, j = np.unravel_index(np.nanargmin(self.scores), self.scores.shape)
        return self.ys[i], self.xs[j]


def crop_positions(length: int, crop: int) -> tuple[int, ...]:
    """Start positions of crops of ``crop`` px over ``length`` px, at most half a crop apart, the
    first at 0 and the last at the end."""
    if crop >= length:
        return (0,)
    count = math.ceil((length - crop) / (crop / 2)) + 1
    return tuple(round(float(v)) for v in np.linspace(0, length - crop, count))


def _tent(crop: int) -> np.ndarray:
    """(crop,) weights: 1 at the centre, small but positive at the edges."""
    t = (np.arange(crop) + 0.5) / crop
    return np.maximum(1.0 - np.abs(2.0 * t - 1.0), 0.0) + 0.02


def quality_map(model: ReIQA, image: Tensor, *, crop: int | None = None) -> QualityMap:
    """The map of a prepared image (``model.prepare``: (3, H, W) float32 in [0, 1], within the
    model's size cap). ``crop``: the crops' side (default a third of the shorter side, at least
    64 px, at most the shorter side)."""
    h, w = image.shape[-2:]
    side = min(h, w, max(MIN_CROP, crop or round(min(h, w) / 3)))
    ys, xs = crop_positions(h, side), crop_positions(w, side)
    crops = [image[:, y : y + side, x : x + side] for y in ys for x in xs]
    records = model.score_batch([f"crop {i}" for i in range(len(crops))], crops)
    scores = np.array([math.nan if r.score is None else r.score for r in records]).reshape(len(ys), len(xs))
    weight = np.outer(_tent(side), _tent(side))
    total, weights = np.zeros((h, w)), np.zeros((h, w))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            if math.isfinite(scores[i, j]):
                total[y : y + side, x : x + side] += weight * scores[i, j]
                weights[y : y + side, x : x + side] += weight
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (total / weights).astype(np.float32)
    return QualityMap(side, ys, xs, scores, values)


def _limits(values: np.ndarray, score_range: tuple[float, float] | None) -> tuple[float, float]:
    """The colour scale: the map's own range, widened to a fifth of the model's score range (when
    known) so that a nearly even photo does not look patchy."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    least = 0.2 * (score_range[1] - score_range[0]) if score_range else 1e-6
    if hi - lo < least:
        middle = (hi + lo) / 2
        lo, hi = middle - least / 2, middle + least / 2
    return lo, hi


def write_map(
    image: Tensor,
    qmap: QualityMap,
    path: str | Path,
    *,
    title: str = "",
    higher_is_better: bool = True,
    score_range: tuple[float, float] | None = None,
    long_side_px: int = 800,
) -> Path:
    """A PNG of the photo (``image``: (3, H, W) in [0, 1], shown in grey) under its map, red where
    the score is worst, the worst crop outlined, with a colour bar and ``title`` inside; the photo's aspect,
    ``long_side_px`` on its longer side; written atomically."""
    ScalarMappable = require("matplotlib.cm", "plots", MAPS).ScalarMappable
    Rectangle = require("matplotlib.patches", "plots", MAPS).Rectangle

    h, w = image.shape[-2:]
    dpi = 100
    scale = long_side_px / dpi / max(h, w)
    figure = new_figure(w * scale, h * scale)
    ax = figure.add_axes((0, 0, 1, 1))
    # the photo in grey under the colours: a red flower must not read as a bad score
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).clamp(0, 1).numpy()
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
    lo, hi = _limits(qmap.values, score_range)
    cmap = "RdYlGn" if higher_is_better else "RdYlGn_r"
    heat = ax.imshow(qmap.values, cmap=cmap, vmin=lo, vmax=hi, alpha=0.5, interpolation="bilinear")
    y, x = qmap.worst()
    ax.add_patch(
        Rectangle((x, y), qmap.crop, qmap.crop, fill=False, edgecolor="white", linestyle="--", lw=1.2)
    )
    ax.set_axis_off()
    box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 3}
    if title:
        ax.text(0.015, 0.985, title, transform=ax.transAxes, va="top", ha="left", fontsize=9, bbox=box)
    legend = Rectangle((0.55, 0.0), 0.45, 0.17, transform=ax.transAxes, facecolor="white", alpha=0.8, lw=0)
    ax.add_patch(legend)
    bar = ax.inset_axes((0.58, 0.055, 0.39, 0.03))
    solid = ScalarMappable(norm=heat.norm, cmap=heat.cmap)  # the bar without the overlay's alpha
    colorbar = figure.colorbar(solid, cax=bar, orientation="horizontal")
    colorbar.ax.tick_params(labelsize=7, pad=1)
    better = "higher" if higher_is_better else "lower"
    colorbar.set_label(f"crop score, {better} is better (dashed: worst crop)", fontsize=7, labelpad=3)
    colorbar.ax.xaxis.set_label_position("top")
    return save_figure(figure, path, dpi=dpi, tight=False)
