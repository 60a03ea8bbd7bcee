"""Checked reading for the dataset loaders: folders, label files (CSV, text, .mat, .xlsx) and the
images they list. Every failure raises DatasetError naming the file, the cause and the fix.

Most loaders are a declaration: a ``LabelFile`` says where the label file is, how to read its rows
(``csv_rows``, ``xlsx_rows``, ``text_rows``), which columns hold the image name, the score and its
std, what else a row says (``entry``) and where the images are; ``load_labels`` reads it. A loader
with several label files reads each with ``read_labels`` and joins them itself.

scipy (for .mat) and openpyxl (for .xlsx), the train extra, are imported when a loader needs them,
so importing ``reiqa.datasets`` stays cheap.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from reiqa.datasets.base import DatasetSpec, LabelTable
from reiqa.errors import DatasetError
from reiqa.extras import require

#: how many missing image names an error message shows
_SHOW = 3


def require_dir(root: Path | str, what: str) -> Path:
    """``root`` as a Path if it is a folder. ``what`` describes the folder the user should pass."""
    root = Path(root).expanduser()
    if not root.is_dir():
        state = "not a folder" if root.exists() else "no such folder"
        raise DatasetError(f"{root}: {state}; pass the {what}")
    return root


def require_file(path: Path, *, root: Path, what: str) -> Path:
    """``path`` if it is a file. Otherwise raise, asking whether ``root`` is the ``what``, and
    point at the file if it sits one folder further down (a common unzip mistake)."""
    if path.is_file():
        return path
    hint = ""
    try:
        rel = path.relative_to(root)
        nested = sorted(d for d in root.iterdir() if d.is_dir() and (d / rel).is_file())
    except (ValueError, OSError):
        nested = []
    if nested:
        hint = f"; {nested[0] / rel} exists, so pass {nested[0]}"
    raise DatasetError(f"{path}: missing; is {root} the {what}?{hint}")


def first_existing(root: Path, names: Sequence[str]) -> Path | None:
    """The first ``root / name`` that exists (file or folder), or None."""
    for name in names:
        if (root / name).exists():
            return root / name
    return None


class FileIndex:
    """Resolves relative image names under a folder, listing each directory once.

    A name is matched exactly first, then ignoring case: the published archives mix cases (TID2013
    has ``I01.BMP`` next to ``i25.bmp``; CSIQ's files are ``1600.AWGN.1.png`` while its spreadsheet
    says ``noise``), and case-insensitive file systems hide the difference on some machines."""

    def __init__(self) -> None:
        self._listings: dict[Path, tuple[frozenset[str], dict[str, str]] | None] = {}

    def _listing(self, folder: Path) -> tuple[frozenset[str], dict[str, str]] | None:
        if folder not in self._listings:
            try:
                names = os.listdir(folder)
            except OSError:
                self._listings[folder] = None
            else:
                lower: dict[str, str] = {}
                for name in sorted(names):
                    lower.setdefault(name.lower(), name)
                self._listings[folder] = (frozenset(names), lower)
        return self._listings[folder]

    def resolve(self, base: Path, name: str) -> Path | None:
        """The existing path for ``base / name`` (``name`` may hold ``/``), or None."""
        current = base
        for part in PurePosixPath(name.replace("\\", "/")).parts:
            listing = self._listing(current)
            if listing is None:
                return None
            exact, lower = listing
            if part in exact:
                current = current / part
            elif part.lower() in lower:
                current = current / lower[part.lower()]
            else:
                return None
        return current


def locate_images(base: Path, names: Sequence[str], *, label_file: Path, fix: str) -> list[Path]:
    """The image file for each name (relative to ``base``), in order.

    Raises:
        DatasetError: ``base`` is not a folder, or some names have no file; the message gives the
            count, the first few names, the label file that lists them and ``fix``.
    """
    if not base.is_dir():
        raise DatasetError(
            f"{base}: image folder missing (the images listed in {label_file.name} live there); {fix}"
        )
    index = FileIndex()
    paths: list[Path] = []
    missing: list[str] = []
    for name in names:
        found = index.resolve(base, name)
        if found is None:
            missing.append(name)
            paths.append(base / name)
        else:
            paths.append(found)
    if missing:
        raise missing_images(base, missing, total=len(names), label_file=label_file, fix=fix)
    return paths


def missing_images(
    base: Path, missing: Sequence[str], *, total: int, label_file: Path, fix: str
) -> DatasetError:
    """The error for images listed in ``label_file`` but not found: count, first few names, fix."""
    shown = ", ".join(missing[:_SHOW]) + (", ..." if len(missing) > _SHOW else "")
    return DatasetError(
        f"{base}: {len(missing)} of {total} images listed in {label_file} are missing ({shown}); {fix}"
    )


def check_unique(names: Sequence[str], *, path: Path, where: Sequence[str]) -> None:
    """Raise if a name is listed twice in ``path``; ``where[i]`` locates entry i (``"line 3"``)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DatasetError(
                f"{path}: {name!r} is listed twice ({where[seen[name]]} and {where[i]}); "
                "each image must appear once"
            )
        seen[name] = i


def check_not_empty(count: int, *, path: Path, what: str) -> None:
    if count == 0:
        raise DatasetError(f"{path}: no {what} found; the file is empty or not the published one")


# -- numbers -----------------------------------------------------------------------------------


def parse_float(value: Any, *, path: Path, where: str, column: str) -> float:
    """``value`` as a finite float; ``where`` is e.g. ``"line 12"`` or ``"row 7"``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        shown = "empty" if value is None or (isinstance(value, str) and not value.strip()) else repr(value)
        raise DatasetError(
            f"{path}, {where}: {column} is {shown}, not a number; fix or remove that row"
        ) from None
    if not math.isfinite(number):
        raise DatasetError(f"{path}, {where}: {column} is {value!r}; fix or remove that row")
    return number


# -- CSV and plain text ------------------------------------------------------------------------


def read_text_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based line numbers, stripped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text ({exc.reason}); is this the published label file?"
        ) from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_csv_header(path: Path, *, what: str) -> list[str]:
    """The column names of a CSV file (its first row), stripped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [h.strip() for h in next(csv.reader(handle), [])]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason}); is this the {what}?") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc}); is this the {what}?") from None


def read_csv(path: Path, required: Sequence[str], *, what: str) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header, as ``(line number, {column: text})``; blank rows skipped.

    Raises:
        DatasetError: the file is not UTF-8 or lacks a ``required`` column (the message lists the
            columns it has and the published header ``what``).
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(
                    f"{path}: no column {missing[0]!r} (it has {header}); expected the published {what} "
                    f"with columns {list(required)}"
                )
            rows: list[tuple[int, dict[str, str]]] = []
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                row = {name: (values[j].strip() if j < len(values) else "") for j, name in enumerate(header)}
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason}); is this the published {what}?") from None
    except csv.Error as exc:
        raise DatasetError(
            f"{path}: not a readable CSV file ({exc}); is this the published {what}?"
        ) from None
    return rows


# -- MATLAB --------------------------------------------------------------------------------------


def read_mat(path: Path, keys: Sequence[str], *, what: str) -> dict[str, np.ndarray]:
    """The variables ``keys`` of a MATLAB (v5) .mat file."""
    loadmat = require("scipy.io", "train", f"reading {what} (.mat)").loadmat
    try:
        data = loadmat(str(path))
    except (ValueError, OSError, NotImplementedError, TypeError) as exc:
        raise DatasetError(
            f"{path}: cannot be read as a MATLAB .mat file ({exc}); re-extract the {what}"
        ) from None
    missing = [k for k in keys if k not in data]
    if missing:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DatasetError(
            f"{path}: no variable {missing[0]!r} (it has {found}); is this the published file of the {what}?"
        )
    return {k: data[k] for k in keys}


def mat_strings(array: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings (any shape, e.g. (1, n) or (n, 1)) as a flat list."""
    out: list[str] = []
    for item in np.asarray(array, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size else ""
        out.append(str(item).strip())
    return out


def mat_numbers(array: np.ndarray, *, path: Path, key: str) -> np.ndarray:
    """A MATLAB numeric array as a flat float64 vector, all finite."""
    try:
        values = np.asarray(array, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: {key} is not numeric; is this the published file?") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DatasetError(f"{path}: {key} entry {int(bad[0]) + 1} is {values[bad[0]]}; the file is damaged")
    return values


# -- Excel ---------------------------------------------------------------------------------------


def read_xlsx(path: Path, *, sheet: str | None, what: str) -> list[tuple[Any, ...]]:
    """All rows of one sheet (the first when ``sheet`` is None) as tuples of cell values."""
    openpyxl = require("openpyxl", "train", f"reading {what} (.xlsx)")
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, InvalidFileException, KeyError, ValueError) as exc:
        raise DatasetError(
            f"{path}: cannot be read as an .xlsx workbook ({exc}); re-extract the {what}"
        ) from None
    try:
        if sheet is None:
            worksheet = book.worksheets[0]
        elif sheet in book.sheetnames:
            worksheet = book[sheet]
        else:
            raise DatasetError(
                f"{path}: no sheet {sheet!r} (it has {book.sheetnames}); is this the published {what}?"
            )
        return [tuple(row) for row in worksheet.iter_rows(values_only=True)]
    finally:
        book.close()


def find_header(
    rows: Sequence[tuple[Any, ...]], required: Sequence[str], *, path: Path, what: str, search: int = 20
) -> tuple[int, dict[str, int]]:
    """The index of the first row (among the first ``search``) holding every ``required`` name,
    compared stripped and case-insensitively, and a map from each required name to its column."""
    wanted = [r.lower() for r in required]
    for i, row in enumerate(rows[:search]):
        cells = [str(c).strip().lower() if c is not None else "" for c in row]
        if all(w in cells for w in wanted):
            return i, {r: cells.index(w) for r, w in zip(required, wanted, strict=True)}
    raise DatasetError(
        f"{path}: no header row with columns {list(required)} in the first {search} rows; "
        f"is this the published {what}?"
    )


def cell_text(value: Any) -> str:
    """A spreadsheet cell as text; whole numbers lose the ``.0`` that Excel gives them."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def blank(value: Any) -> bool:
    """Whether a cell holds nothing: None, or text that is empty once stripped."""
    return value is None or (isinstance(value, str) and not value.strip())


# -- the shared recipe: a declared label file read into a LabelTable -----------------------------

#: one row of a label file: column name -> cell (text for CSV and text files, any value for .xlsx)
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Place:
    """Where a row stands, for error messages: its file and ``"line 3"`` (or ``"row 7"``).

    ``str(place)`` is ``"<file>, line 3"``, the prefix every row error starts with."""

    file: Path
    where: str

    def __str__(self) -> str:
        return f"{self.file}, {self.where}"

    def number(self, value: Any, column: str) -> float:
        """``value`` of ``column`` as a finite float (``parse_float`` at this place)."""
        return parse_float(value, path=self.file, where=self.where, column=column)


#: reads a label file into ``(where, row)`` pairs, ``where`` being e.g. ``"line 3"``
RowReader = Callable[[Path], Iterable[tuple[str, Row]]]


def csv_rows(what: str, columns: Sequence[str]) -> RowReader:
    """Rows of a CSV file with a header holding ``columns`` (``what``: the published file, for errors)."""

    def read(path: Path) -> list[tuple[str, Row]]:
        return [(f"line {n}", row) for n, row in read_csv(path, columns, what=what)]

    return read


def xlsx_rows(
    what: str, columns: Sequence[str], *, sheet: str | None = None, padding: Sequence[str] = ()
) -> RowReader:
    """Rows below the header row of one sheet (the first when ``sheet`` is None) of an .xlsx
    workbook; the header is found by the names ``columns``. A row whose ``padding`` cells are all
    ``blank`` is skipped (workbooks pad their ends)."""

    def read(path: Path) -> list[tuple[str, Row]]:
        rows = read_xlsx(path, sheet=sheet, what=what)
        in_sheet = "" if sheet is None else f" (sheet {sheet!r})"
        head, col = find_header(rows, columns, path=path, what=what + in_sheet)
        out: list[tuple[str, Row]] = []
        for r, values in enumerate(rows[head + 1 :], start=head + 2):
            cells = {k: (values[j] if j < len(values) else None) for k, j in col.items()}
            if padding and all(blank(cells[k]) for k in padding):
                continue
            out.append((f"sheet {sheet!r} row {r}" if sheet is not None else f"row {r}", cells))
        return out

    return read


def text_rows(split: Callable[[str, Place], Row]) -> RowReader:
    """Non-blank lines of a text file, each made a row by ``split(line, place)`` (which raises
    DatasetError, starting with ``place``, for a line it cannot read). Lines are split as the rows
    are read, so the first bad line is the one reported, whatever is wrong with it."""

    def read(path: Path) -> Iterator[tuple[str, Row]]:
        for n, line in read_text_lines(path):
            place = Place(path, f"line {n}")
            yield place.where, split(line, place)

    return read


@dataclass
class Labels:
    """What label files say, one entry per row in file order.

    ``reference`` and ``distortion`` are None unless the recipe's ``entry`` gives them."""

    names: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    std: list[float] | None = None
    reference: list[str] | None = None
    distortion: list[str] | None = None
    places: list[Place] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


#: the keys an ``entry`` function may return
ENTRY_KEYS = ("image", "reference", "distortion")


@dataclass(frozen=True)
class LabelFile:
    """The declarative part of a loader: how a database's label file becomes a LabelTable.

    Attributes:
        rows: reads the file's rows: ``csv_rows``, ``xlsx_rows`` or ``text_rows``.
        image: the column holding the image name (relative to the image folder).
        score: the column holding the score.
        std: the column holding the standard deviation of the ratings; None when not published.
        entry: ``entry(row, place)`` checks what else a row says and returns it as a dict with
            any of ``"image"`` (a name built from several columns, replacing ``image``),
            ``"reference"`` and ``"distortion"``; called before the numbers are read.
        path: the label file relative to the database folder; with several, the first that is a
            file (when none is, the first is reported missing). Used by ``load_labels`` only.
        folder: the database folder as messages describe it: ``"KADID-10k folder (it holds ...)"``.
        images: the image folder relative to the database folder, or ``images(root, names)``
            (which may raise DatasetError).
        fix: what to do when images are missing; ``{root}`` and ``{images}`` are filled in.
        rated: what the rows are, for the message on an empty file.
        more: ``more(root, labels)`` reads further columns from other files once the labels are
            read and checked: a dict with ``"split"`` and/or ``"std"``.
    """

    rows: RowReader
    image: str
    score: str
    std: str | None = None
    entry: Callable[[Row, Place], dict[str, str]] | None = None
    path: str | tuple[str, ...] = ()
    folder: str = ""
    images: str | Callable[[Path, list[str]], Path] = "."
    fix: str = ""
    rated: str = "labelled images"
    more: Callable[[Path, Labels], dict[str, list[Any]]] | None = None


def read_labels(path: Path, labels: LabelFile) -> Labels:
    """The rows of the label file ``path`` read as ``labels`` declares, row by row: ``entry``
    first, then the score, then the std. No check of the whole (empty file, names listed twice).

    Raises:
        DatasetError: the file cannot be read, or a row is malformed (naming file and line).
    """
    found = Labels(std=None if labels.std is None else [])
    given: dict[str, list[str]] = {}
    for where, row in labels.rows(path):
        place = Place(path, where)
        extra = labels.entry(row, place) if labels.entry is not None else {}
        unknown = sorted(set(extra) - set(ENTRY_KEYS))
        if unknown:
            raise ValueError(f"LabelFile.entry returned {unknown}; it may return {list(ENTRY_KEYS)}")
        found.names.append(extra["image"] if "image" in extra else cell_text(row[labels.image]))
        found.scores.append(place.number(row[labels.score], labels.score))
        if found.std is not None and labels.std is not None:
            found.std.append(place.number(row[labels.std], labels.std))
        for key in ("reference", "distortion"):
            if key in extra:
                given.setdefault(key, []).append(extra[key])
        found.places.append(place)
    for key, values in given.items():
        if len(values) != len(found):
            raise ValueError(f"LabelFile.entry gave {key!r} for {len(values)} of {len(found)} rows")
        setattr(found, key, values)
    return found


def load_labels(spec: DatasetSpec, labels: LabelFile, root: Path | str) -> LabelTable:
    """The LabelTable of database ``spec`` in the folder ``root``, read as ``labels`` declares.

    In order: the folder and the label file must exist; the rows are read (``read_labels``); the
    file must list at least one image, each once; ``more`` reads further files; every image must
    exist in the image folder.

    Raises:
        DatasetError: any of those fails; the message names the file and the cause.
    """
    root = require_dir(root, labels.folder)
    candidates = (labels.path,) if isinstance(labels.path, str) else labels.path
    if not candidates:
        raise ValueError("LabelFile.path is needed to load a database with load_labels")
    path = next((root / c for c in candidates if (root / c).is_file()), root / candidates[0])
    label_file = require_file(path, root=root, what=labels.folder)
    found = read_labels(label_file, labels)
    check_not_empty(len(found), path=label_file, what=labels.rated)
    check_unique(found.names, path=label_file, where=[p.where for p in found.places])
    more = labels.more(root, found) if labels.more is not None else {}
    image_dir = labels.images(root, found.names) if callable(labels.images) else root / labels.images
    paths = locate_images(
        image_dir, found.names, label_file=label_file, fix=labels.fix.format(root=root, images=image_dir)
    )
    return spec.table(
        root,
        paths,
        found.scores,
        std=more.get("std", found.std),
        reference=found.reference,
        distortion=found.distortion,
        split=more.get("split"),
    )
