"""CSIQ, the Categorical Subjective Image Quality database (Larson and Chandler, 2010).

The folder as published::

    csiq.DMOS.xlsx      sheet 'all_by_image': a few title rows, then the header
                        image | dst_idx | dst_type | dst_lev | dmos_std | dmos   (columns D..I)
    dst_imgs/<folder>/<image>.<TOKEN>.<level>.png     e.g. dst_imgs/awgn/1600.AWGN.1.png
    src_imgs/<image>.png                              the 30 references

The spreadsheet names the distortion differently from the folders and files; the mapping, which
two independent loaders found on their copies, is::

    dst_type    folder     file token
    noise       awgn       AWGN
    jpeg        jpeg       JPEG
    jpeg 2000   jpeg2000   jpeg2000
    fnoise      fnoise     fnoise
    blur        blur       BLUR
    contrast    contrast   contrast

File names are matched ignoring case. The header row is found by its names, not its position.
Excel stores the image ``1600`` as a number; it is read back as ``"1600"``. Not every file in
``dst_imgs`` has a row (ARNIQA's loader notes unrated files); only rated images are loaded (866).

Scores: DMOS in 0..1, lower is better (pyiqa: range 0..1, "dmos"). std: ``dmos_std``.
reference: the ``image`` column. distortion: the folder name (``awgn``, ``jpeg2000``, ...).
Uncertain: the token case (``AWGN``/``BLUR``/``JPEG``) comes from third-party loaders, hence the
case-insensitive match.
"""

from __future__ import annotations

from pathlib import Path

from reiqa.datasets._common import (
    cell_text,
    check_not_empty,
    check_unique,
    find_header,
    locate_images,
    parse_float,
    read_xlsx,
    require_dir,
    require_file,
)
from reiqa.datasets.base import DatasetSpec, LabelTable
from reiqa.errors import DatasetError

LABEL_FILE = "csiq.DMOS.xlsx"
SHEET = "all_by_image"
#: spreadsheet dst_type -> (folder under dst_imgs/, token in the file name)
DISTORTIONS: dict[str, tuple[str, str]] = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
_COLUMNS = ("image", "dst_type", "dst_lev", "dmos_std", "dmos")
_WHAT = f"CSIQ folder (it holds {LABEL_FILE} and dst_imgs/)"
_RANGE = (0.0, 1.0)


def load(root: Path) -> LabelTable:
    """Read CSIQ from ``root`` (the folder that holds ``csiq.DMOS.xlsx`` and ``dst_imgs/``).

    Raises:
        DatasetError: the workbook is missing or malformed, or images are missing.
    """
    root = require_dir(root, _WHAT)
    label_file = require_file(root / LABEL_FILE, root=root, what=_WHAT)
    rows = read_xlsx(label_file, sheet=SHEET, what="CSIQ DMOS workbook")
    head, col = find_header(rows, _COLUMNS, path=label_file, what=f"CSIQ DMOS workbook (sheet {SHEET!r})")

    names: list[str] = []
    scores: list[float] = []
    std: list[float] = []
    reference: list[str] = []
    distortion: list[str] = []
    wheres: list[str] = []
    for r, row in enumerate(rows[head + 1 :], start=head + 2):
        cells = {k: (row[j] if j < len(row) else None) for k, j in col.items()}
        if all(cells[k] in (None, "") for k in ("image", "dst_type", "dmos")):
            continue  # padding rows at the end of the sheet
        where = f"sheet {SHEET!r} row {r}"
        image = cell_text(cells["image"])
        dst_type = cell_text(cells["dst_type"]).lower()
        if not image or dst_type not in DISTORTIONS:
            raise DatasetError(
                f"{label_file}, {where}: image {image!r} with dst_type {dst_type!r}; dst_type must be one of "
                f"{sorted(DISTORTIONS)}. Is this the published workbook?"
            )
        level = parse_float(cells["dst_lev"], path=label_file, where=where, column="dst_lev")
        if not level.is_integer():
            raise DatasetError(f"{label_file}, {where}: dst_lev is {level}, expected a whole number")
        folder, token = DISTORTIONS[dst_type]
        names.append(f"{folder}/{image}.{token}.{int(level)}.png")
        scores.append(parse_float(cells["dmos"], path=label_file, where=where, column="dmos"))
        std.append(parse_float(cells["dmos_std"], path=label_file, where=where, column="dmos_std"))
        reference.append(image)
        distortion.append(folder)
        wheres.append(where)
    check_not_empty(len(names), path=label_file, what="rated images")
    check_unique(names, path=label_file, where=wheres)
    paths = locate_images(
        root / "dst_imgs", names, label_file=label_file, fix=f"extract dst_imgs.zip into {root}/dst_imgs"
    )
    return SPEC.table(root, paths, scores, std=std, reference=reference, distortion=distortion)


SPEC = DatasetSpec(
    name="csiq",
    title="CSIQ",
    kind="synthetic",
    score="DMOS",
    score_range=_RANGE,
    higher_is_better=False,
    official_split=False,
    load=load,
    citation=(
        "E. C. Larson, D. M. Chandler, 'Most apparent distortion: full-reference image quality assessment "
        "and the role of strategy', Journal of Electronic Imaging 19(1), 2010."
    ),
)
