"""Figures for reports and training curves, drawn without pyplot.

Each figure is a ``matplotlib.figure.Figure`` with its own Agg canvas, so drawing one never
switches the backend of a user's session (a notebook keeps its inline backend) and holds no
global pyplot state. Files are written atomically (``reiqa.atomic``). matplotlib is imported when
a figure is made: scoring never needs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reiqa.atomic import atomic_path
from reiqa.extras import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with an Agg canvas attached (matplotlib: the
    plots extra)."""
    figure = require("matplotlib.figure", "plots", "drawing figures").Figure(figsize=(width, height))
    require("matplotlib.backends.backend_agg", "plots", "drawing figures").FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 110, tight: bool = True) -> Path:
    """Lay out (``tight``: matplotlib's tight layout; False for a figure whose axes are placed by
    hand) and write ``figure`` in the format of the file's suffix (PNG, PDF, SVG, ...),
    atomically."""
    path = Path(path)
    if tight:
        figure.tight_layout()
    with atomic_path(path) as tmp:  # the temporary name ends in .tmp: the format is given
        figure.savefig(tmp, dpi=dpi, format=path.suffix[1:].lower() or None)
    return path
