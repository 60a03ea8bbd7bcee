"""KonIQ-10k (Hosu, Lin, Sziranyi and Saupe, 2020): 10,073 in-the-wild photographs.

The folder as published::

    koniq10k_scores_and_distributions.csv
        header: image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore
    1024x768/  or  512x384/          the images (1024x768 is used when both are there)
    koniq10k_distributions_sets.csv  optional, from github.com/subpic/koniq (metadata/)
        header: image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set     set: training|validation|test

Scores: ``MOS``, the mean of the 1..5 ACR ratings, higher is better; std: ``SD``, the standard
deviation of those ratings (both per subpic/koniq#6). ``MOS_zscore`` is a per-rater z-scored
version on roughly 0..100 (subpic/koniq#6, #12); pyiqa trains on it (IQA-PyTorch#113), and the
``MOS`` column of the sets file equals it. This loader reports ``MOS`` (1..5); rescale if you
compare against numbers computed on ``MOS_zscore`` (SRCC is the same only up to the per-rater
normalisation, so it can differ slightly).

split: from the sets file when it is in ``root`` (training -> train, validation -> val, test ->
test, as pyiqa's ``process_koniq10k.py`` maps it); None otherwise. Every image must have a set.
"""

from __future__ import annotations

from pathlib import Path

from reiqa.datasets._common import LabelFile, Labels, csv_rows, first_existing, load_labels, read_csv
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

LABEL_FILE = "koniq10k_scores_and_distributions.csv"
SETS_FILE = "koniq10k_distributions_sets.csv"
IMAGE_DIRS = ("1024x768", "512x384")
SET_NAMES = {"training": "train", "validation": "val", "test": "test"}


def _image_dir(root: Path, names: list[str]) -> Path:
    image_dir = first_existing(root, IMAGE_DIRS)
    if image_dir is None:
        raise DatasetError(
            f"{root}: neither 1024x768/ nor 512x384/ is there; extract koniq10k_1024x768.zip (or the 512x384 "
            f"archive) into {root}"
        )
    return image_dir


def _split(root: Path, labels: Labels) -> dict[str, list[str]]:
    """The official split from the sets file, when it is in ``root``."""
    path = root / SETS_FILE
    if not path.is_file():
        return {}
    assigned: dict[str, str] = {}
    for line_no, row in read_csv(path, ("image_name", "set"), what="KonIQ-10k sets file"):
        value = row["set"].lower()
        if value not in SET_NAMES:
            raise DatasetError(
                f"{path}, line {line_no}: set is {row['set']!r}, expected one of {sorted(SET_NAMES)}"
            )
        assigned[row["image_name"]] = SET_NAMES[value]
    unassigned = [name for name in labels.names if name not in assigned]
    if unassigned:
        raise DatasetError(
            f"{path}: {len(unassigned)} images of {LABEL_FILE} have no set (e.g. {unassigned[0]}); "
            f"use the sets file that matches the release, or remove {path.name} to load without the "
            "official split"
        )
    return {"split": [assigned[name] for name in labels.names]}


LABELS = LabelFile(
    path=LABEL_FILE,
    folder=f"KonIQ-10k folder (it holds {LABEL_FILE} and 1024x768/ or 512x384/)",
    rows=csv_rows("KonIQ-10k scores file", ("image_name", "MOS", "SD")),
    image="image_name",
    score="MOS",
    std="SD",
    more=_split,
    images=_image_dir,
    fix="extract the whole KonIQ-10k archive into {images}",
)


def load(root: Path) -> LabelTable:
    """Read KonIQ-10k from ``root`` (the folder that holds the scores CSV and an image folder).

    Raises:
        DatasetError: a label file is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


SPEC = dataset_spec(
    name="koniq10k",
    title="KonIQ-10k",
    kind="authentic",
    scale=Scale("MOS", 1.0, 5.0, higher_is_better=True),
    official_split=True,
    load=load,
    citation=(
        "V. Hosu, H. Lin, T. Sziranyi, D. Saupe, 'KonIQ-10k: An ecologically valid database for deep "
        "learning of blind image quality assessment', IEEE Trans. Image Processing 29, 2020."
    ),
)
