from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, live
from tests.datasets import fakes

# (index into the 982 entries, relative image path) of the entries left distorted (orgs == 0)
KEPT = [
    (0, "jp2k/img1.bmp"),
    (2, "jp2k/img3.bmp"),
    (228, "jpeg/img2.bmp"),
    (460, "wn/img1.bmp"),
    (981, "fastfading/img174.bmp"),
]


def make_live(root: Path, *, n: int = 982, skip_image: str | None = None) -> np.ndarray:
    dmos = np.linspace(0.0, 90.0, n)
    orgs = np.ones(n)
    for i, _ in KEPT:
        orgs[i] = 0
    refs = [f"ref{i % 29}.bmp" for i in range(n)]
    fakes.mat(root / "dmos.mat", dmos=dmos.reshape(1, -1), orgs=orgs.reshape(1, -1))
    fakes.mat(root / "refnames_all.mat", refnames_all=fakes.cell(refs, (1, n)))
    fakes.images(root, [name for _, name in KEPT if name != skip_image])
    return dmos


def test_reads_the_release_and_drops_reference_copies(tmp_path: Path) -> None:
    dmos = make_live(tmp_path)
    table = live.load(tmp_path)
    assert len(table) == len(KEPT)
    assert table.paths == [tmp_path / name for _, name in KEPT]
    np.testing.assert_allclose(table.scores, dmos[[i for i, _ in KEPT]])
    assert table.higher_is_better is False and live.SPEC.higher_is_better is False
    assert table.distortion == ["jp2k", "jp2k", "jpeg", "wn", "fastfading"]
    assert table.reference == [f"ref{i % 29}" for i, _ in KEPT]
    assert table.split is None and table.std is None
    assert table.score_range == live.SPEC.score_range


def test_missing_label_file_names_it_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dmos\.mat: missing; is .* the LIVE Release 2 folder"):
        live.load(tmp_path)


def test_missing_images_are_counted_and_named(tmp_path: Path) -> None:
    make_live(tmp_path, skip_image="wn/img1.bmp")
    with pytest.raises(
        DatasetError, match=r"1 of 5 images listed in .*dmos\.mat are missing \(wn/img1\.bmp\)"
    ):
        live.load(tmp_path)


def test_wrong_entry_count_is_refused(tmp_path: Path) -> None:
    make_live(tmp_path, n=990)
    with pytest.raises(DatasetError, match=r"990 entries, expected 982"):
        live.load(tmp_path)
