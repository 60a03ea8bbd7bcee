"""SPAQ, Smartphone Photography Attribute and Quality (Fang et al., CVPR 2020): 11,125 photos.

The folder as published::

    Annotations/MOS and Image attribute scores.xlsx   (also accepted directly in the root)
        first sheet, header row: Image name | MOS | Brightness | Colorfulness | Contrast |
                                 Noisiness | Sharpness
    TestImage/      00001.jpg ... 11125.jpg

pyiqa's ``process_spaq.py`` and several loaders read the first sheet with these column names;
the images are in ``TestImage/``. The five attribute scores are not loaded.

Scores: MOS on 0..100, higher is better (pyiqa: 1..100). std: None; the workbook has none (the
authors later shared ``SPAQ_mos_std.txt`` separately, h4nwei/SPAQ#18, and noted some errors in it;
it is not read). Many users resize the images (shorter side 512) before use; the loader only
needs the file names to match. No official split; published results use random 80/20 splits.
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

LABEL_FILE = "MOS and Image attribute scores.xlsx"
LABEL_DIRS = ("Annotations", ".")
IMAGE_DIR = "TestImage"
_WHAT = f"SPAQ folder (it holds Annotations/{LABEL_FILE} and {IMAGE_DIR}/)"
_RANGE = (0.0, 100.0)


def load(root: Path) -> LabelTable:
    """Read SPAQ from ``root`` (the folder that holds ``Annotations/`` and ``TestImage/``).

    Raises:
        DatasetError: the workbook is missing or malformed, or images are missing.
    """
    root = require_dir(root, _WHAT)
    label_file = next(
        (root / d / LABEL_FILE for d in LABEL_DIRS if (root / d / LABEL_FILE).is_file()),
        root / LABEL_DIRS[0] / LABEL_FILE,
    )
    label_file = require_file(label_file, root=root, what=_WHAT)
    rows = read_xlsx(label_file, sheet=None, what="SPAQ annotation workbook")
    head, col = find_header(rows, ("Image name", "MOS"), path=label_file, what="SPAQ annotation workbook")
    names: list[str] = []
    scores: list[float] = []
    wheres: list[str] = []
    for r, row in enumerate(rows[head + 1 :], start=head + 2):
        image = cell_text(row[col["Image name"]] if col["Image name"] < len(row) else None)
        mos = row[col["MOS"]] if col["MOS"] < len(row) else None
        if not image and mos in (None, ""):
            continue  # padding rows
        where = f"row {r}"
        scores.append(parse_float(mos, path=label_file, where=where, column="MOS"))
        names.append(image)
        wheres.append(where)
    check_not_empty(len(names), path=label_file, what="labelled images")
    check_unique(names, path=label_file, where=wheres)
    paths = locate_images(
        root / IMAGE_DIR, names, label_file=label_file, fix=f"extract the SPAQ images into {root / IMAGE_DIR}"
    )
    return SPEC.table(root, paths, scores)


SPEC = DatasetSpec(
    name="spaq",
    title="SPAQ",
    kind="authentic",
    score="MOS",
    score_range=_RANGE,
    higher_is_better=True,
    official_split=False,
    load=load,
    citation=(
        "Y. Fang, H. Zhu, Y. Zeng, K. Ma, Z. Wang, 'Perceptual Quality Assessment of Smartphone "
        "Photography', CVPR 2020."
    ),
)
