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

from reiqa.datasets._common import LabelFile, load_labels, xlsx_rows
from reiqa.datasets.base import LabelTable, Scale, dataset_spec

LABEL_FILE = "MOS and Image attribute scores.xlsx"
LABEL_DIRS = ("Annotations", ".")
IMAGE_DIR = "TestImage"

LABELS = LabelFile(
    path=tuple(f"{d}/{LABEL_FILE}" for d in LABEL_DIRS),
    folder=f"SPAQ folder (it holds Annotations/{LABEL_FILE} and {IMAGE_DIR}/)",
    # rows with neither image name nor MOS pad the end of the sheet
    rows=xlsx_rows("SPAQ annotation workbook", ("Image name", "MOS"), padding=("Image name", "MOS")),
    image="Image name",
    score="MOS",
    images=IMAGE_DIR,
    fix="extract the SPAQ images into {images}",
)


def load(root: Path) -> LabelTable:
    """Read SPAQ from ``root`` (the folder that holds ``Annotations/`` and ``TestImage/``).

    Raises:
        DatasetError: the workbook is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


SPEC = dataset_spec(
    name="spaq",
    title="SPAQ",
    kind="authentic",
    scale=Scale("MOS", 0.0, 100.0, higher_is_better=True),
    official_split=False,
    load=load,
    citation=(
        "Y. Fang, H. Zhu, Y. Zeng, K. Ma, Z. Wang, 'Perceptual Quality Assessment of Smartphone "
        "Photography', CVPR 2020."
    ),
)
