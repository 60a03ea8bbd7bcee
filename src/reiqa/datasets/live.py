"""LIVE Image Quality Assessment Database, Release 2 (Sheikh, Sabir and Bovik, 2006).

The folder as published (``databaserelease2/``)::

    dmos.mat            dmos (1, 982): DMOS; orgs (1, 982): 1 where the entry is a reference copy
    refnames_all.mat    refnames_all (1, 982): cell of reference file names, e.g. 'womanhat.bmp'
    jp2k/ jpeg/ wn/ gblur/ fastfading/     img1.bmp, img2.bmp, ... in each folder
    refimgs/            the 29 reference images

The 982 entries are the five folders in that order, each numbered from ``img1.bmp``: jp2k 227,
jpeg 233, wn 174, gblur 174, fastfading 174 (the release readme; pyiqa's ``process_live.py`` and
ARNIQA's LIVE loader use the same order and counts). Entries with ``orgs == 1`` are the undistorted
references repeated inside the folders; they are dropped, leaving the 779 distorted images that
every published protocol uses.

Scores: DMOS from ``dmos.mat``, lower is better. Nominal range 0..100 (pyiqa lists 1..100); the raw
DMOS can fall a little outside it, which we have not checked against the release.
reference: the reference file's stem (``womanhat``). distortion: the folder name.
std: None. Release 2 also ships ``dmos_realigned.mat`` (``dmos_new``, ``dmos_std``), the DMOS
realigned across the five sessions; this loader reads ``dmos.mat``, as pyiqa and ARNIQA do.
Not checked against a real copy: whether any release renames ``refimgs/`` (unused here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reiqa.datasets._common import (
    locate_images,
    mat_numbers,
    mat_strings,
    read_mat,
    require_dir,
    require_file,
)
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

#: (folder, number of entries) in the order of dmos.mat
FOLDERS: tuple[tuple[str, int], ...] = (
    ("jp2k", 227),
    ("jpeg", 233),
    ("wn", 174),
    ("gblur", 174),
    ("fastfading", 174),
)
N_ENTRIES = sum(count for _, count in FOLDERS)  # 982

_WHAT = "LIVE Release 2 folder (it holds dmos.mat, refnames_all.mat and jp2k/ jpeg/ wn/ gblur/ fastfading/)"


def load(root: Path) -> LabelTable:
    """Read LIVE Release 2 from ``root`` (the folder that holds ``dmos.mat``).

    Raises:
        DatasetError: a label file is missing or malformed, or images are missing.
    """
    root = require_dir(root, _WHAT)
    dmos_file = require_file(root / "dmos.mat", root=root, what=_WHAT)
    refs_file = require_file(root / "refnames_all.mat", root=root, what=_WHAT)
    mat = read_mat(dmos_file, ("dmos", "orgs"), what="LIVE Release 2")
    dmos = mat_numbers(mat["dmos"], path=dmos_file, key="dmos")
    orgs = mat_numbers(mat["orgs"], path=dmos_file, key="orgs")
    refnames = mat_strings(read_mat(refs_file, ("refnames_all",), what="LIVE Release 2")["refnames_all"])
    for path, key, values in (
        (dmos_file, "dmos", dmos),
        (dmos_file, "orgs", orgs),
        (refs_file, "refnames_all", refnames),
    ):
        if len(values) != N_ENTRIES:
            raise DatasetError(
                f"{path}: {key} has {len(values)} entries, expected {N_ENTRIES} (jp2k 227, jpeg 233, wn 174, "
                "gblur 174, fastfading 174); this loader reads Release 2 only"
            )
    if not np.isin(orgs, (0.0, 1.0)).all():
        raise DatasetError(f"{dmos_file}: orgs must hold only 0 and 1; the file is not the published one")

    names: list[str] = []
    keep: list[int] = []
    distortion: list[str] = []
    offset = 0
    for folder, count in FOLDERS:
        for k in range(count):
            if orgs[offset + k] == 0:
                keep.append(offset + k)
                names.append(f"{folder}/img{k + 1}.bmp")
                distortion.append(folder)
        offset += count
    paths = locate_images(
        root, names, label_file=dmos_file, fix=f"extract the five distortion folders of Release 2 into {root}"
    )
    return SPEC.table(
        root, paths, dmos[keep], reference=[Path(refnames[i]).stem for i in keep], distortion=distortion
    )


SPEC = dataset_spec(
    name="live",
    title="LIVE IQA (Release 2)",
    kind="synthetic",
    scale=Scale("DMOS", 0.0, 100.0, higher_is_better=False),
    official_split=False,
    load=load,
    citation=(
        "H. R. Sheikh, M. F. Sabir, A. C. Bovik, 'A statistical evaluation of recent full reference image "
        "quality assessment algorithms', IEEE Trans. Image Processing 15(11), 2006."
    ),
)
