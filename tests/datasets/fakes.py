"""Tiny fake copies of the IQA databases, written in their published formats under tmp_path.

Images are 4x4 files made with Pillow; the loaders only check that they exist."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def image(path: Path) -> Path:
    """A 4x4 RGB image at ``path`` (format from the suffix), parent folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (120, 60, 30)).save(path)
    return path


def images(folder: Path, names: Iterable[str]) -> list[Path]:
    return [image(folder / name) for name in names]


def text(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def mat(path: Path, **variables: Any) -> Path:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables)
    return path


def cell(strings: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB cell array of strings, as scipy.io.savemat writes one."""
    out = np.empty(len(strings), dtype=object)
    out[:] = list(strings)
    return out.reshape(shape)


def xlsx(path: Path, sheets: dict[str, Sequence[Sequence[Any]]]) -> Path:
    import openpyxl

    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    book.save(path)
    return path
