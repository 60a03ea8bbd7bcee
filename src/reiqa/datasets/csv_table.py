"""A user's own scores from a CSV file: one row per image, a header row, comma-separated.

The image and score columns are guessed from common names when not given (see ``IMAGE_COLUMNS``
and ``SCORE_COLUMNS``; matched ignoring case, first hit wins). A column named like a standard
deviation (``STD_COLUMNS``) is read into ``std``; columns named ``reference``, ``distortion`` and
``split`` are read too, so a file written from ``LabelTable.to_frame_rows()`` loads back.
``dmos`` is deliberately not guessed: name it with ``score_column`` and say its direction with
``higher_is_better``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reiqa.datasets._common import check_unique, missing_images, parse_float, read_csv, read_csv_header
from reiqa.datasets.base import SPLITS, LabelTable
from reiqa.errors import DatasetError
from reiqa.inputs import IMAGE_COLUMNS, find_column

SCORE_COLUMNS = ("score", "mos", "mos_quality", "quality", "rating", "label")
STD_COLUMNS = ("std", "mos_std", "sd", "std_quality")


def load_csv(
    path: Path | str,
    *,
    image_column: str | None = None,
    score_column: str | None = None,
    root: Path | str | None = None,
    higher_is_better: bool = True,
) -> LabelTable:
    """Read image names and scores from a CSV file.

    Args:
        path: the CSV file.
        image_column: the column of image file names; guessed from ``IMAGE_COLUMNS`` when None.
        score_column: the column of scores; guessed from ``SCORE_COLUMNS`` when None.
        root: the folder that relative image names are relative to; the CSV's folder when None.
            Absolute names are used as they are.
        higher_is_better: the direction of the scores.

    Returns:
        A LabelTable named after the file's stem, with ``score_range`` the (min, max) of the
        scores found.

    Raises:
        DatasetError: the file or a column is missing, an image is listed twice, a score is not a
            finite number (the message names the line), there are fewer than 2 rows, or images
            are missing.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; pass the CSV file that lists your images and their scores")
    header = read_csv_header(path, what="score table")
    image_column = _column(path, header, image_column, IMAGE_COLUMNS, "image", "image_column")
    score_column = _column(path, header, score_column, SCORE_COLUMNS, "score", "score_column")
    std_column = find_column(header, STD_COLUMNS)
    rows = read_csv(path, [image_column, score_column], what="score table")
    if len(rows) < 2:
        raise DatasetError(f"{path}: {len(rows)} data row(s); at least 2 images with scores are needed")

    names: list[str] = []
    for line_no, row in rows:
        if not row[image_column]:
            raise DatasetError(f"{path}, line {line_no}: {image_column} is empty; fix or remove that row")
        names.append(row[image_column])
    check_unique(names, path=path, where=[f"line {n}" for n, _ in rows])
    scores = np.array(
        [parse_float(r[score_column], path=path, where=f"line {n}", column=score_column) for n, r in rows]
    )
    std = None
    if std_column is not None:
        std = np.array(
            [parse_float(r[std_column], path=path, where=f"line {n}", column=std_column) for n, r in rows]
        )
    split = _splits(path, rows, header)

    base = path.parent if root is None else Path(root).expanduser()
    paths = [Path(name) if Path(name).is_absolute() else base / name for name in names]
    missing = [name for name, p in zip(names, paths, strict=True) if not p.is_file()]
    if missing:
        raise missing_images(
            base,
            missing,
            total=len(names),
            label_file=path,
            fix=(
                "give the folder the image names are relative to (--root for reiqa evaluate, --images "
                "for reiqa fit, root= in Python), or fix the names"
            ),
        )
    return LabelTable(
        dataset=path.stem,
        root=base,
        paths=paths,
        scores=scores,
        std=std,
        reference=_optional(rows, header, "reference"),
        distortion=_optional(rows, header, "distortion"),
        split=split,
        higher_is_better=higher_is_better,
        score_range=(float(scores.min()), float(scores.max())),
    )


def _column(
    path: Path, header: list[str], given: str | None, guesses: tuple[str, ...], what: str, arg: str
) -> str:
    if given is not None:
        if given not in header:
            raise DatasetError(f"{path}: no column {given!r} (it has {header}); pass {arg}= one of them")
        return given
    found = find_column(header, guesses)
    if found is not None:
        return found
    raise DatasetError(
        f"{path}: no {what} column among the usual names {list(guesses)} (it has {header}); "
        f"pass {arg}= one of them"
    )


def _splits(path: Path, rows: list[tuple[int, dict[str, str]]], header: list[str]) -> list[str] | None:
    split = _optional(rows, header, "split")
    for (line_no, _), value in zip(rows, split or [], strict=False):
        if value not in SPLITS:
            raise DatasetError(f"{path}, line {line_no}: split is {value!r}, expected one of {list(SPLITS)}")
    return split


def _optional(rows: list[tuple[int, dict[str, str]]], header: list[str], name: str) -> list[str] | None:
    return [row[name] for _, row in rows] if name in header else None
