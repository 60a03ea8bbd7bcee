"""PIPAL, Perceptual Image Processing ALgorithms (Gu et al., ECCV 2020), public training part.

The folder as published for NTIRE 2021 (training data)::

    Train_Label/A0001.txt ...   one line per distorted image: "<name>,<elo>", e.g. "A0001_00_00.bmp,1432.1"
    Distortion_1/ .. Distortion_4/   the distorted images, spread over four folders (archive parts)
    Train_Ref/A0001.bmp ...     the 200 reference images (not read)

A distorted name ``A0001_10_02.bmp`` starts with its reference (``A0001``), then the distortion
type code and a sub-index (the PIPAL-dataset README shows ``A0000_10_00.bmp``). pyiqa's
``process_pipal.py`` reads the same files and takes the reference from the name, as we do.
An image is looked up in every ``Distortion_*`` folder; one listed in two folders is an error.

Scores: Elo ratings from pairwise preferences, higher is better (the PIPAL code turns two Elo
values into a preference probability ``1 / (1 + 10 ** ((B - A) / 400))``). Elo has no fixed scale:
the nominal range (800, 2000) is our bracket, not a published one. std: None. reference: the name
prefix. distortion: the type code from the name (``"10"``); the label files give no type names.
Only the training part is read; the validation and test labels were released apart from it.
"""

from __future__ import annotations

from pathlib import Path

from reiqa.datasets._common import (
    LabelFile,
    Place,
    Row,
    check_not_empty,
    check_unique,
    read_labels,
    require_dir,
    text_rows,
)
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

LABEL_DIR = "Train_Label"
IMAGE_DIR_GLOB = "Distortion_*"
_WHAT = f"PIPAL training folder (it holds {LABEL_DIR}/, Distortion_1/ .. Distortion_4/ and Train_Ref/)"


def _split_line(line: str, place: Place) -> Row:
    name, sep, elo = line.partition(",")
    name = name.strip()
    if not sep or "_" not in name:
        raise DatasetError(f"{place}: {line!r}; expected '<AXXXX_TT_SS.bmp>,<elo>'")
    return {"name": name, "elo": elo.strip()}


#: one label file of Train_Label/; every one is read
LABELS = LabelFile(rows=text_rows(_split_line), image="name", score="elo")


def load(root: Path) -> LabelTable:
    """Read the PIPAL training part from ``root`` (the folder that holds ``Train_Label/``).

    Raises:
        DatasetError: the label folder is missing or malformed, or images are missing.
    """
    root = require_dir(root, _WHAT)
    label_dir = root / LABEL_DIR
    label_files = sorted(label_dir.glob("*.txt"))
    if not label_files:
        state = "has no .txt files" if label_dir.is_dir() else "missing"
        raise DatasetError(f"{label_dir}: {state}; is {root} the {_WHAT}?")
    read = [read_labels(label_file, LABELS) for label_file in label_files]
    names = [name for labels in read for name in labels.names]
    places = [place for labels in read for place in labels.places]
    check_not_empty(len(names), path=label_dir, what="labelled images")
    check_unique(names, path=label_dir, where=[f"{p.file.name} {p.where}" for p in places])
    paths = _locate(root, names, [p.file for p in places])
    stems = [Path(name).stem.split("_") for name in names]
    return SPEC.table(
        root,
        paths,
        [score for labels in read for score in labels.scores],
        reference=[parts[0] for parts in stems],
        distortion=[parts[1] for parts in stems],
    )


def _locate(root: Path, names: list[str], sources: list[Path]) -> list[Path]:
    folders = sorted(d for d in root.glob(IMAGE_DIR_GLOB) if d.is_dir())
    if not folders:
        raise DatasetError(
            f"{root}: no Distortion_* folder; extract Distortion_1.zip .. Distortion_4.zip into {root}"
        )
    where: dict[str, Path] = {}
    for folder in folders:
        for entry in folder.iterdir():
            key = entry.name.lower()
            if key in where:
                raise DatasetError(
                    f"{entry}: also in {where[key].parent}; "
                    "each distorted image must be in one Distortion_* folder"
                )
            where[key] = entry
    missing = [(n, s) for n, s in zip(names, sources, strict=True) if n.lower() not in where]
    if missing:
        shown = ", ".join(n for n, _ in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DatasetError(
            f"{root}: {len(missing)} of {len(names)} images listed in {root / LABEL_DIR} (first in "
            f"{missing[0][1].name}) are in no Distortion_* folder ({shown}); "
            "extract all four Distortion archives"
        )
    return [where[n.lower()] for n in names]


SPEC = dataset_spec(
    name="pipal",
    title="PIPAL (training part)",
    kind="synthetic",
    scale=Scale("Elo", 800.0, 2000.0, higher_is_better=True),
    official_split=False,
    load=load,
    citation=(
        "J. Gu, H. Cai, H. Chen, X. Ye, J. Ren, C. Dong, 'PIPAL: a Large-Scale Image Quality Assessment "
        "Dataset for Perceptual Image Restoration', ECCV 2020."
    ),
)
