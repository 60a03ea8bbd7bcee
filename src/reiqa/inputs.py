"""What a user names on the command line or passes to the API, turned into a list of image files.

Inputs are image files, folders, glob patterns and CSV lists (one row per image, with a column
named like ``IMAGE_COLUMNS``). This is the one place that expands them, for scoring, feature
extraction and training alike, and the one table of column names for image paths in CSV files
(the score tables of ``reiqa.datasets.csv_table`` use it too).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from reiqa.errors import DataError
from reiqa.io import IMAGE_SUFFIXES

__all__ = [
    "IMAGE_COLUMNS",
    "expand_inputs",
    "file_sha256",
    "find_column",
    "find_images",
    "list_training_images",
    "read_image_list",
]

StrPath = str | os.PathLike[str]

#: Column names that hold an image's file name or path in a CSV file, matched ignoring case; the
#: first name in this order that the header has is used.
IMAGE_COLUMNS = ("image", "image_name", "img_name", "name", "filename", "file", "path", "image_path", "img")


def find_column(header: Sequence[str], names: Sequence[str]) -> str | None:
    """The first column of ``header`` matching one of ``names`` (in the order of ``names``),
    ignoring case; None when none matches."""
    for name in names:
        for column in header:
            if column.lower() == name:
                return column
    return None


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def find_images(inputs: Iterable[StrPath], *, recursive: bool = False) -> list[Path]:
    """Expand files, directories and glob patterns into a list of image files.

    A file is kept as given, whatever its suffix (loading will report it if it is not an image).
    A directory gives its files whose suffix, in lower case, is in ``reiqa.io.IMAGE_SUFFIXES``,
    sorted; with ``recursive=True`` also those in its subdirectories, sorted by path. A pattern
    containing ``*``, ``?`` or ``[`` that is not an existing path is expanded with
    :func:`glob.glob` (``**`` matches any depth) and gives the matching image files, sorted. The
    order of ``inputs`` is kept and a file reached twice is listed once, where it first appeared.

    Args:
        inputs: paths of files or directories, or glob patterns.
        recursive: also scan subdirectories of directory inputs.

    Returns:
        The image files, as paths built from the inputs (not resolved).

    Raises:
        FileNotFoundError: an input does not exist, or a pattern matches no image file.
        TypeError: ``inputs`` is a single path rather than a collection of them.
    """
    if isinstance(inputs, str | os.PathLike):
        raise TypeError(
            f"find_images takes a list of paths, got the single path {inputs!r}; wrap it in a list"
        )
    found: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        path = Path(item)
        if path.is_file():
            batch = [path]
        elif path.is_dir():
            children = path.rglob("*") if recursive else path.iterdir()
            batch = sorted(p for p in children if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif _is_glob(os.fspath(item)):
            matches = (Path(m) for m in glob.glob(os.fspath(item), recursive=True))
            batch = sorted(p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not batch:
                raise FileNotFoundError(f"{item}: no image files match this pattern")
        else:
            raise FileNotFoundError(f"{item}: no such file or directory")
        for p in batch:
            if _key(p) not in seen:
                seen.add(_key(p))
                found.append(p)
    return found


def read_image_list(path: StrPath) -> list[Path]:
    """Image paths from a CSV list: the column named like one of ``IMAGE_COLUMNS``; relative
    paths are taken from the CSV's folder (and resolved), empty cells skipped."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        column = find_column(reader.fieldnames or [], IMAGE_COLUMNS)
        if column is None:
            raise DataError(
                f"{path}: needs a column of image paths named one of {list(IMAGE_COLUMNS)} (any case), "
                f"found {reader.fieldnames}"
            )
        return [
            Path(row[column]) if Path(row[column]).is_absolute() else (path.parent / row[column]).resolve()
            for row in reader
            if row[column]
        ]


def expand_inputs(
    inputs: Iterable[StrPath], *, recursive: bool = False, empty: list[str] | None = None
) -> list[Path]:
    """Files, folders, glob patterns and CSV lists (see :func:`read_image_list`), in order, each
    file once. Inputs that yield no file are appended to ``empty`` when given (a folder without
    images, a CSV list with no rows)."""
    out: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == ".csv" and path.is_file():
            found = read_image_list(path)
        else:
            found = find_images([item], recursive=recursive)
        if not found and empty is not None:
            empty.append(str(item))
        for p in found:
            if _key(p) not in seen:
                seen.add(_key(p))
                out.append(p)
    return out


def list_training_images(sources: Iterable[StrPath]) -> list[Path]:
    """:func:`expand_inputs` with folders searched recursively; at least one image.

    Raises:
        DataError: no image was found in any source.
    """
    sources = list(sources)
    paths = expand_inputs(sources, recursive=True)
    if not paths:
        raise DataError(
            f"no images found in {[str(s) for s in sources]} (suffixes: {sorted(IMAGE_SUFFIXES)})"
        )
    return paths


def file_sha256(path: StrPath) -> str:
    """SHA-256 of a file's bytes, as hex (what feature caches and provenance records key on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
