"""CLIVE, the LIVE In the Wild Image Quality Challenge Database (Ghadiyaram and Bovik, 2016).

Two layouts are read; the first found wins.

1. The release as published (``ChallengeDB_release/``)::

       Data/AllImages_release.mat   AllImages_release (1169, 1): cell of file names
       Data/AllMOS_release.mat      AllMOS_release (1, 1169): MOS
       Data/AllStdDev_release.mat   AllStdDev_release (1, 1169): std of the ratings
       Images/                      1.bmp ... (and a few .JPG), Images/trainingImages/

   The first 7 entries are ``t1.bmp`` .. ``t7.bmp``, the images shown to train the raters (the
   release readme: "An Images/trainingImages folder with a total of 7 images, that were used for
   training the subjects"). **They are dropped**, leaving the 1,162 test images every published
   result uses (the common ``[7:]`` slice; pyiqa's meta CSV lists them first too).

2. The simple layout of our shared copy: ``mos.csv`` with columns ``image, mos, mos_std`` (other
   columns are ignored) next to ``images/``. It holds only the 1,162 test images, so nothing is
   dropped.

Scores: MOS on 0..100, higher is better (pyiqa: 1..100). std: the published standard deviation.
No official split; published results use random 80/20 or 70/10/20 splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reiqa.datasets._common import (
    LabelFile,
    check_unique,
    csv_rows,
    load_labels,
    locate_images,
    mat_numbers,
    mat_strings,
    read_mat,
    require_dir,
)
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

N_TRAINING_IMAGES = 7
RELEASE_FILES = {
    "names": ("Data/AllImages_release.mat", "AllImages_release"),
    "mos": ("Data/AllMOS_release.mat", "AllMOS_release"),
    "std": ("Data/AllStdDev_release.mat", "AllStdDev_release"),
}
SIMPLE_FILE = "mos.csv"
_WHAT = "CLIVE folder: ChallengeDB_release/ (it holds Data/ and Images/) or a folder with mos.csv and images/"
#: the simple layout: mos.csv next to images/
SIMPLE = LabelFile(
    path=SIMPLE_FILE,
    folder=_WHAT,
    rows=csv_rows("CLIVE mos.csv", ("image", "mos", "mos_std")),
    image="image",
    score="mos",
    std="mos_std",
    images="images",
    fix="copy the images into {images}",
)


def load(root: Path) -> LabelTable:
    """Read CLIVE from ``root``: the release folder or the simple ``mos.csv`` + ``images/`` layout.

    Raises:
        DatasetError: no known layout, a label file is malformed, or images are missing.
    """
    root = require_dir(root, _WHAT)
    if (root / RELEASE_FILES["mos"][0]).is_file():
        return _load_release(root)
    if (root / SIMPLE_FILE).is_file():
        return load_labels(SPEC, SIMPLE, root)
    nested = sorted(d for d in root.iterdir() if d.is_dir() and (d / RELEASE_FILES["mos"][0]).is_file())
    hint = f"; {nested[0] / RELEASE_FILES['mos'][0]} exists, so pass {nested[0]}" if nested else ""
    raise DatasetError(
        f"{root / RELEASE_FILES['mos'][0]}: missing, and so is {root / SIMPLE_FILE}; "
        f"is {root} the {_WHAT}?{hint}"
    )


def _load_release(root: Path) -> LabelTable:
    values: dict[str, np.ndarray] = {}
    for key, (rel, var) in RELEASE_FILES.items():
        path = root / rel
        if not path.is_file():
            raise DatasetError(f"{path}: missing; the release's Data/ folder holds all three .mat files")
        values[key] = read_mat(path, (var,), what="CLIVE release")[var]
    names_file = root / RELEASE_FILES["names"][0]
    names = mat_strings(values["names"])
    mos = mat_numbers(values["mos"], path=root / RELEASE_FILES["mos"][0], key=RELEASE_FILES["mos"][1])
    std = mat_numbers(values["std"], path=root / RELEASE_FILES["std"][0], key=RELEASE_FILES["std"][1])
    if not len(names) == len(mos) == len(std):
        raise DatasetError(
            f"{root / 'Data'}: {len(names)} names, {len(mos)} MOS and {len(std)} std values; the three .mat "
            "files must come from the same release"
        )
    if len(names) <= N_TRAINING_IMAGES:
        raise DatasetError(
            f"{names_file}: only {len(names)} entries; the release lists 7 training images and then the "
            "1,162 test images"
        )
    names, mos, std = names[N_TRAINING_IMAGES:], mos[N_TRAINING_IMAGES:], std[N_TRAINING_IMAGES:]
    check_unique(
        names, path=names_file, where=[f"entry {i + 1 + N_TRAINING_IMAGES}" for i in range(len(names))]
    )
    paths = locate_images(
        root / "Images", names, label_file=names_file, fix=f"extract the release's Images/ folder into {root}"
    )
    return SPEC.table(root, paths, mos, std=std)


SPEC = dataset_spec(
    name="clive",
    title="LIVE In the Wild Image Quality Challenge (CLIVE)",
    kind="authentic",
    scale=Scale("MOS", 0.0, 100.0, higher_is_better=True),
    official_split=False,
    load=load,
    citation=(
        "D. Ghadiyaram, A. C. Bovik, 'Massive Online Crowdsourced Study of Subjective and Objective Picture "
        "Quality', IEEE Trans. Image Processing 25(1), 2016."
    ),
)
