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

from reiqa.datasets._common import LabelFile, Place, Row, cell_text, load_labels, xlsx_rows
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
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


def _entry(row: Row, place: Place) -> dict[str, str]:
    """The file name under dst_imgs/, the reference and the distortion folder of one row."""
    image = cell_text(row["image"])
    dst_type = cell_text(row["dst_type"]).lower()
    if not image or dst_type not in DISTORTIONS:
        raise DatasetError(
            f"{place}: image {image!r} with dst_type {dst_type!r}; dst_type must be one of "
            f"{sorted(DISTORTIONS)}. Is this the published workbook?"
        )
    level = place.number(row["dst_lev"], "dst_lev")
    if not level.is_integer():
        raise DatasetError(f"{place}: dst_lev is {level}, expected a whole number")
    folder, token = DISTORTIONS[dst_type]
    return {"image": f"{folder}/{image}.{token}.{int(level)}.png", "reference": image, "distortion": folder}


LABELS = LabelFile(
    path=LABEL_FILE,
    folder=f"CSIQ folder (it holds {LABEL_FILE} and dst_imgs/)",
    # rows whose image, dst_type and dmos are all empty pad the end of the sheet
    rows=xlsx_rows("CSIQ DMOS workbook", _COLUMNS, sheet=SHEET, padding=("image", "dst_type", "dmos")),
    image="image",
    score="dmos",
    std="dmos_std",
    entry=_entry,
    images="dst_imgs",
    fix="extract dst_imgs.zip into {root}/dst_imgs",
    rated="rated images",
)


def load(root: Path) -> LabelTable:
    """Read CSIQ from ``root`` (the folder that holds ``csiq.DMOS.xlsx`` and ``dst_imgs/``).

    Raises:
        DatasetError: the workbook is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


SPEC = dataset_spec(
    name="csiq",
    title="CSIQ",
    kind="synthetic",
    scale=Scale("DMOS", 0.0, 1.0, higher_is_better=False),
    official_split=False,
    load=load,
    citation=(
        "E. C. Larson, D. M. Chandler, 'Most apparent distortion: full-reference image quality assessment "
        "and the role of strategy', Journal of Electronic Imaging 19(1), 2010."
    ),
)
