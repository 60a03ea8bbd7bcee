"""KADID-10k, the Konstanz Artificially Distorted Image quality Database (Lin, Hosu and Saupe, 2019).

The folder as published (``kadid10k/``)::

    dmos.csv     header: dist_img,ref_img,dmos,var     e.g. I01_01_01.png,I01.png,4.57,0.496
    images/      the 10,125 distorted images I01_01_01.png .. I81_25_05.png and the 81 references

A name ``IRR_DD_LL.png`` is reference RR, distortion type DD (01..25), level LL (01..05).
pyiqa's ``process_kadid10k.py`` and ARNIQA read the same file and folder.

Scores: the ``dmos`` column, on 1..5, and **higher is better** despite its name: the database page
says "The range of DMOS is [1 5], high value of DMOS corresponds to higher visual quality" (quoted
in icbcbicc/IQA-Dataset#3 and MetaIQA#8); the ratings are degradation category ratings (5 =
imperceptible). std: the ``var`` column, unchanged. Uncertain: one third-party manifest builder
states that ``var`` holds the standard deviation, not the variance, after checking it against the
raw ratings; we have not checked this ourselves. reference: the ``ref_img`` stem (``I01``).
distortion: the names in ``DISTORTIONS`` (the KADID-10k paper's 25 types, in its order).
"""

from __future__ import annotations

import re
from pathlib import Path

from reiqa.datasets._common import LabelFile, Place, Row, csv_rows, load_labels
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

LABEL_FILE = "dmos.csv"
IMAGE_DIR = "images"
COLUMNS = ("dist_img", "ref_img", "dmos", "var")
#: the 25 distortion types, by their number in the file names (01..25)
DISTORTIONS: tuple[str, ...] = (
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "color_diffusion",
    "color_shift",
    "color_quantization",
    "color_saturation_1",
    "color_saturation_2",
    "jpeg2000",
    "jpeg",
    "white_noise",
    "white_noise_in_color_component",
    "impulse_noise",
    "multiplicative_noise",
    "denoise",
    "brighten",
    "darken",
    "mean_shift",
    "jitter",
    "non_eccentricity_patch",
    "pixelate",
    "quantization",
    "color_block",
    "high_sharpen",
    "contrast_change",
)
_NAME = re.compile(r"^I(\d+)_(\d\d)_(\d\d)\.png$", re.IGNORECASE)


def _entry(row: Row, place: Place) -> dict[str, str]:
    """Reference and distortion type of one row, from ``ref_img`` and the number in ``dist_img``."""
    match = _NAME.match(row["dist_img"])
    if match is None:
        raise DatasetError(
            f"{place}: dist_img {row['dist_img']!r} is not of the form IRR_DD_LL.png; "
            "is this the KADID-10k file?"
        )
    kind = int(match.group(2))
    if not 1 <= kind <= len(DISTORTIONS):
        raise DatasetError(f"{place}: distortion type {kind:02d} is outside 01..25")
    if not row["ref_img"]:
        raise DatasetError(f"{place}: ref_img is empty; fix or remove that row")
    return {"reference": Path(row["ref_img"]).stem, "distortion": DISTORTIONS[kind - 1]}


LABELS = LabelFile(
    path=LABEL_FILE,
    folder=f"KADID-10k folder (it holds {LABEL_FILE} and {IMAGE_DIR}/)",
    rows=csv_rows("KADID-10k dmos.csv", COLUMNS),
    image="dist_img",
    score="dmos",
    std="var",
    entry=_entry,
    images=IMAGE_DIR,
    fix="extract the KADID-10k images into {images}",
)


def load(root: Path) -> LabelTable:
    """Read KADID-10k from ``root`` (the folder that holds ``dmos.csv`` and ``images/``).

    Raises:
        DatasetError: ``dmos.csv`` is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


SPEC = dataset_spec(
    name="kadid10k",
    title="KADID-10k",
    kind="synthetic",
    scale=Scale("DMOS", 1.0, 5.0, higher_is_better=True),
    official_split=False,
    load=load,
    citation=(
        "H. Lin, V. Hosu, D. Saupe, 'KADID-10k: A Large-scale Artificially Distorted IQA Database', "
        "QoMEX 2019."
    ),
)
