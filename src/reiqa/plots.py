"""Figures for reports and training curves, drawn without pyplot.

Each figure is a ``matplotlib.figure.Figure`` with its own Agg canvas, so drawing one never
switches the backend of a user's session (a notebook keeps its inline backend) and holds no
global pyplot state. Files are written atomically."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with an Agg canvas attached."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Lay out and write ``figure`` in the format of the file's suffix (PNG, PDF, SVG, ...),
    through a temporary file that is then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    figure.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    return path
