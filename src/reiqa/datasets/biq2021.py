"""BIQ2021 (Ahmed et al., 2022): 12,000 photographs with opinion scores, in three subsets.

The folder as published (github.com/nisarahmedrana/BIQ2021)::

    Train (Images and MOS).csv     10,000 rows; header: Image Name,MOS (plus two empty columns)
    Test (Images and MOS).csv      2,000 rows, same header
    Images/                        the 12,000 photos, mostly 512x512 JPEG

Scores: ``MOS``, the mean of the observers' 1..5 ratings (30 per the README) scaled by the
authors to 0..1, higher is better; no standard deviation is published. One file's extension
differs in case from its row (``ss02 (1014).JPG``), so names are matched ignoring case.

split: the published train/test split (no val part: the protocol then chooses the regressor's
strength by cross-validation inside train). distortion: the subset each photo belongs to, read
from its name, so that reports give an SRCC per subset:

- ``ss01``: 2,000 photos from one photographer's gallery, not taken for IQA;
- ``ss02``: 2,000 photos degraded on purpose while shooting (ISO 50-3200, shutter speed, lens and
  motion blur, ambient light);
- ``ss03``: 8,000 photos from Unsplash, many post-processed.

The repository has no licence file; its README asks users to cite the paper below.
"""

from __future__ import annotations

import re
from pathlib import Path

from reiqa.datasets._common import (
    LabelFile,
    check_not_empty,
    check_unique,
    csv_rows,
    locate_images,
    read_labels,
    require_dir,
)
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

LABEL_FILES = {"train": "Train (Images and MOS).csv", "test": "Test (Images and MOS).csv"}
IMAGE_DIR = "Images"
SUBSETS = ("ss01", "ss02", "ss03")
_NAME = re.compile(r"^(ss0[123]) \(\d+\)\.jpe?g$", re.IGNORECASE)
_WHAT = f"BIQ2021 folder (it holds {LABEL_FILES['train']!r}, {LABEL_FILES['test']!r} and {IMAGE_DIR}/)"
#: each of the two label files
LABELS = LabelFile(
    rows=csv_rows("BIQ2021 label file", ("Image Name", "MOS")), image="Image Name", score="MOS"
)


def load(root: Path) -> LabelTable:
    """Read BIQ2021 from ``root`` (the repository's folder: the two CSV files and ``Images/``).

    Raises:
        DatasetError: a label file is missing or malformed, a name is not of the published form
            ``ssNN (k).jpg``, an image is listed twice, or images are missing.
    """
    root = require_dir(root, _WHAT)
    names: list[str] = []
    scores: list[float] = []
    split: list[str] = []
    where: list[str] = []
    for part, file_name in LABEL_FILES.items():
        label_file = root / file_name
        if not label_file.is_file():
            raise DatasetError(f"{label_file}: missing; {_WHAT}, as cloned from its GitHub repository")
        labels = read_labels(label_file, LABELS)
        check_not_empty(len(labels), path=label_file, what="labelled images")
        names += labels.names
        scores += labels.scores
        split += [part] * len(labels)
        where += [str(place) for place in labels.places]
    check_unique([n.lower() for n in names], path=root, where=where)
    subsets = []
    for name, place in zip(names, where, strict=True):
        match = _NAME.match(name)
        if match is None:
            raise DatasetError(f"{place}: image name {name!r} is not of the published form 'ss01 (12).jpg'")
        subsets.append(match.group(1).lower())
    paths = locate_images(
        root / IMAGE_DIR,
        names,
        label_file=root / " and ".join(LABEL_FILES.values()),
        fix=f"clone the whole BIQ2021 repository (its {IMAGE_DIR}/ folder holds the 12,000 photos)",
    )
    return SPEC.table(root, paths, scores, distortion=subsets, split=split)


SPEC = dataset_spec(
    name="biq2021",
    title="BIQ2021",
    kind="authentic",
    scale=Scale("MOS", 0.0, 1.0, higher_is_better=True),
    official_split=True,
    load=load,
    citation=(
        "N. Ahmed et al., 'BIQ2021: a large-scale blind image quality assessment database', Journal of "
        "Electronic Imaging 31(5), 053010, 2022, doi:10.1117/1.JEI.31.5.053010."
    ),
)
