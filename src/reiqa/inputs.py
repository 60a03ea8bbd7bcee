"""What a user names on the command line or passes to the API, turned into a list of image files.

Inputs are image files, folders, glob patterns and CSV lists (one row per image, with a column
named like ``IMAGE_COLUMNS``). This is the one place that expands them, for scoring, feature
extraction and training alike, and the one table of column names for image paths in CSV files
(the score tables of ``reiqa.datasets.csv_table`` use it too).
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from reiqa.errors import DataError, printable
from reiqa.io import IMAGE_SUFFIXES, UNSUPPORTED_SUFFIXES, file_signature

__all__ = [
    "IMAGE_COLUMNS",
    "expand_inputs",
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


_LISTED_SUFFIXES = IMAGE_SUFFIXES | UNSUPPORTED_SUFFIXES


def _is_dir(entry: os.DirEntry[str] | Path) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symbolic link loop
        return False


def _looks_like_image(path: Path) -> bool:
    """Whether a folder entry that is not a folder is listed: by its suffix whatever kind of entry
    it is (a FIFO or a broken link is then reported by loading), else by the first bytes of a
    regular file (never opening anything else)."""
    return path.suffix.lower() in _LISTED_SUFFIXES or file_signature(path) is not None


def _scan(folder: Path, shown: str, recursive: bool, bad: list[str] | None) -> list[Path]:
    """The images in ``folder`` (and its subfolders), sorted; see :func:`find_images`."""
    found: list[Path] = []
    pending = [folder]
    visited: set[str] = set()  # resolved folders, so that links between folders cannot loop
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if real in visited:
            continue
        visited.add(real)
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError as exc:
            if current == folder:
                raise type(exc)(f"{shown}: cannot list this folder ({exc.strerror})") from exc
            if bad is not None:
                bad.append(printable(f"{current}: cannot list this folder ({exc.strerror})"))
            continue
        for entry in entries:
            child = current / entry.name
            if _is_dir(entry):
                if recursive and not entry.name.startswith("."):  # .git, .thumbnails, ...
                    pending.append(child)
            elif entry.name.startswith("._") and file_signature(child) is None:
                continue  # a macOS AppleDouble file: metadata named after a photo, not an image
            elif _looks_like_image(child):
                found.append(child)
    return sorted(found)


def find_images(inputs: Iterable[StrPath], *, recursive: bool = False) -> list[Path]:
    """Expand files, directories and glob patterns into a list of image files.

    Anything that exists and is not a directory is kept as given, whatever it is (loading reports
    what is not an image, and a FIFO, a broken or looping symbolic link). A directory gives,
    sorted, every entry that is not a directory and looks like an image, so that each is either
    scored or reported by loading: one whose suffix, in lower case, is in
    ``reiqa.io.IMAGE_SUFFIXES`` or ``reiqa.io.UNSUPPORTED_SUFFIXES`` whatever kind of entry it is,
    and a regular file whose first bytes carry an image signature
    (:func:`reiqa.io.file_signature`) whatever its suffix. Hidden files are listed by the same
    rule, except macOS ``._*`` files without an image signature (metadata, not photos). With
    ``recursive=True`` subdirectories are searched too, hidden ones (``.git``, ``.thumbnails``)
    excepted; links to directories are followed, each directory visited once; the whole is
    sorted by path, and subdirectories that cannot be listed are skipped. A
    pattern containing ``*``, ``?`` or ``[`` that is not an existing path is expanded with
    :func:`glob.glob` (``**`` matches any depth) and gives the matching entries that look like
    images, sorted. The order of ``inputs`` is kept and a file reached twice is listed once,
    where it first appeared.

    Args:
        inputs: paths of files or directories, or glob patterns.
        recursive: also scan subdirectories of directory inputs.

    Returns:
        The image files, as paths built from the inputs (not resolved).

    Raises:
        FileNotFoundError: an input does not exist, or a pattern matches no image file.
        OSError: a directory input cannot be listed (PermissionError mostly).
        TypeError: ``inputs`` is a single path rather than a collection of them.
    """
    if isinstance(inputs, str | os.PathLike):
        raise TypeError(
            f"find_images takes a list of paths, got the single path {inputs!r}; wrap it in a list"
        )
    return _find_images(inputs, recursive=recursive, bad=None)


def _find_images(inputs: Iterable[StrPath], *, recursive: bool, bad: list[str] | None) -> list[Path]:
    """:func:`find_images`, adding subfolders that cannot be listed to ``bad`` when given."""
    found: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        path = Path(item)
        if _is_dir(path):
            batch = _scan(path, os.fspath(item), recursive, bad)
        elif os.path.lexists(path):
            batch = [path]
        elif _is_glob(os.fspath(item)):
            matches = (Path(m) for m in glob.glob(os.fspath(item), recursive=True))
            batch = sorted(p for p in matches if not _is_dir(p) and _looks_like_image(p))
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
    """Image paths from a CSV list (UTF-8, with or without a byte order mark): the column named
    like one of ``IMAGE_COLUMNS``; relative paths are taken from the CSV's folder (and resolved),
    empty cells skipped.

    Raises:
        DataError: the file is not UTF-8 text, not CSV, or has no column of image paths; the
            message starts with ``path`` as given.
        OSError: the file cannot be opened.
    """
    shown = os.fspath(path)
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            column = find_column(reader.fieldnames or [], IMAGE_COLUMNS)
            if column is None:
                raise DataError(
                    f"{shown}: needs a column of image paths named one of {list(IMAGE_COLUMNS)} (any case), "
                    f"found {reader.fieldnames}"
                )
            return [
                Path(row[column])
                if Path(row[column]).is_absolute()
                else (path.parent / row[column]).resolve()
                for row in reader
                if row[column]
            ]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{shown}: not a UTF-8 text file (byte {exc.start} cannot be decoded); save the list as "
            "CSV in UTF-8"
        ) from exc
    except csv.Error as exc:
        raise DataError(f"{shown}: not a readable CSV file ({exc})") from exc


def expand_inputs(
    inputs: Iterable[StrPath],
    *,
    recursive: bool = False,
    empty: list[str] | None = None,
    bad: list[str] | None = None,
) -> list[Path]:
    """Files, folders, glob patterns and CSV lists (see :func:`read_image_list`), in order, each
    file once. Inputs that yield no file are appended to ``empty`` when given (a folder without
    images, a CSV list with no rows).

    When ``bad`` is given, an input that cannot be expanded (it does not exist, a pattern matches
    nothing, a folder or CSV list cannot be read) is appended to it as a one-line message
    starting with the input as given (control characters escaped), such as
    ``"photos/x.jpg: no such file or directory"``, as are subfolders that cannot be listed, and
    the other inputs are expanded; otherwise the first such input raises.

    Raises:
        FileNotFoundError, OSError, DataError: as in :func:`find_images` and
            :func:`read_image_list`, only when ``bad`` is None.
    """
    out: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        path = Path(item)
        try:
            if path.suffix.lower() == ".csv" and path.is_file():
                found = read_image_list(item)
            else:
                found = _find_images([item], recursive=recursive, bad=bad)
        except (OSError, DataError) as exc:
            if bad is None:
                raise
            bad.append(_one_line(item, exc))
            continue
        if not found and empty is not None:
            empty.append(str(item))
        for p in found:
            if _key(p) not in seen:
                seen.add(_key(p))
                out.append(p)
    return out


def _one_line(item: StrPath, exc: Exception) -> str:
    """``exc`` as one line starting with ``item``: runs of whitespace (newlines too) become one
    space, and other control characters are escaped (:func:`reiqa.errors.printable`)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:  # from open()
        text = f"{item}: cannot read it ({exc.strerror})"
    else:
        text = str(exc)
        if not text.startswith(f"{item}: "):
            text = f"{item}: {text}"
    return printable(" ".join(text.split()))


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
