"""FLIVE, the LIVE-FB database of PaQ-2-PiQ (Ying et al., CVPR 2020): 39,810 pictures.

The folder as published: the ``database/`` folder that ``FLIVE_Database``'s
``database_prep.ipynb`` fills (the same files sit in ``baidut/PaQ-2-PiQ/database/``)::

    labels_image.csv        header: name,mos     e.g. voc_emotic_ava/AVA__129332.jpg,58.65
    labels_patch.csv        patch labels (not read)
    voc_emotic_ava/  blur_dataset/  EE371R/  ...  the images, at the paths in ``name``
    labels=640_padded.csv   optional: the train/val images, column name_image, column is_valid
    labels640.csv           optional: the test images, column name_image (not needed, see below)

The official split. FLIVE_Database issue #2 ("Train/Val/Test set split are not provided") is
open; the split that pyiqa (``process_flive.py``) and others use is the one in the two PaQ-2-PiQ
label files: ``labels=640_padded.csv`` lists the pictures of at most 640x640 used to train, with
``is_valid`` True for the validation ones, and ``labels640.csv`` lists the 1,827 larger pictures
that form the test set (we counted 1,827 rows in PaQ-2-PiQ commit 5e33d41, all with a side above
640; the paper reports about 30k / 7.7k / 1.8k). We read it so: an image in the padded file is
``val`` when ``is_valid`` is true, else ``train``; every other image is ``test``. The padded file
is also accepted under the name ``labels<=640_padded.csv`` (its name in PaQ-2-PiQ's fastiqa code).
Without the padded file, ``split`` is None. There are no files named ``labels_train`` /
``labels_test``. Uncertain: the padded file is too large for the public snapshot we could read, so
its column names (``name_image``, ``is_valid``) come from two loaders that read it, not from the
file itself; if ``labels640.csv`` is present we check that it names no train/val image.

Scores: MOS on 0..100, higher is better (one picture has MOS 0.0). No std is published per image.
"""

from __future__ import annotations

from pathlib import Path

from reiqa.datasets._common import (
    LabelFile,
    Labels,
    check_not_empty,
    csv_rows,
    first_existing,
    load_labels,
    read_csv,
)
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

LABEL_FILE = "labels_image.csv"
TRAIN_VAL_FILES = ("labels=640_padded.csv", "labels<=640_padded.csv")
TEST_FILE = "labels640.csv"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _split(root: Path, labels: Labels) -> dict[str, list[str]]:
    """The official split from the PaQ-2-PiQ files, when the train/val file is in ``root``."""
    train_val_file = first_existing(root, TRAIN_VAL_FILES)
    if train_val_file is None:
        return {}
    return {"split": _read_split(train_val_file, root / TEST_FILE, labels.names)}


LABELS = LabelFile(
    path=LABEL_FILE,
    folder=f"FLIVE database folder (it holds {LABEL_FILE}, voc_emotic_ava/ and blur_dataset/)",
    rows=csv_rows("FLIVE labels_image.csv", ("name", "mos")),
    image="name",
    score="mos",
    more=_split,
    fix="run FLIVE_Database's database_prep.ipynb so the images land in {root}",
)


def load(root: Path) -> LabelTable:
    """Read FLIVE from ``root`` (the ``database`` folder holding ``labels_image.csv``).

    Raises:
        DatasetError: a label file is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


def _read_split(train_val_file: Path, test_file: Path, names: list[str]) -> list[str]:
    assigned: dict[str, str] = {}
    for line_no, row in read_csv(train_val_file, ("name_image", "is_valid"), what="PaQ-2-PiQ split file"):
        flag = row["is_valid"].lower()
        if flag not in _TRUE | _FALSE:
            raise DatasetError(
                f"{train_val_file}, line {line_no}: is_valid is {row['is_valid']!r}, expected True or False"
            )
        assigned[row["name_image"]] = "val" if flag in _TRUE else "train"
    check_not_empty(len(assigned), path=train_val_file, what="images")
    known = set(names)
    unknown = [name for name in assigned if name not in known]
    if unknown and len(unknown) == len(assigned):
        raise DatasetError(
            f"{train_val_file}: none of its name_image values (e.g. {unknown[0]!r}) is in {LABEL_FILE}; "
            "use the split file that belongs to this release"
        )
    if test_file.is_file():
        for line_no, row in read_csv(test_file, ("name_image",), what="PaQ-2-PiQ test list"):
            if row["name_image"] in assigned:
                raise DatasetError(
                    f"{test_file}, line {line_no}: {row['name_image']!r} is a test image but "
                    f"{train_val_file.name} lists it for {assigned[row['name_image']]}; "
                    "the two files disagree"
                )
    return [assigned.get(name, "test") for name in names]


SPEC = dataset_spec(
    name="flive",
    title="FLIVE (PaQ-2-PiQ)",
    kind="authentic",
    scale=Scale("MOS", 0.0, 100.0, higher_is_better=True),
    official_split=True,
    load=load,
    citation=(
        "Z. Ying, H. Niu, P. Gupta, D. Mahajan, D. Ghadiyaram, A. C. Bovik, 'From Patches to Pictures "
        "(PaQ-2-PiQ): Mapping the Perceptual Space of Picture Quality', CVPR 2020."
    ),
)
