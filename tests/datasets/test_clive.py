from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, clive
from tests.datasets import fakes

TRAINING = [f"t{i}.bmp" for i in range(1, 8)]
TEST = ["100.bmp", "3.bmp", "1024.JPG"]


def make_release(root: Path, *, files: list[str] = TEST) -> np.ndarray:
    names = TRAINING + TEST
    mos = np.linspace(10.0, 90.0, len(names))
    fakes.mat(root / "Data/AllImages_release.mat", AllImages_release=fakes.cell(names, (len(names), 1)))
    fakes.mat(root / "Data/AllMOS_release.mat", AllMOS_release=mos.reshape(1, -1))
    fakes.mat(root / "Data/AllStdDev_release.mat", AllStdDev_release=(mos / 5).reshape(1, -1))
    fakes.images(root / "Images", files)
    fakes.images(root / "Images/trainingImages", TRAINING)
    return mos


def test_release_layout_drops_the_7_training_images(tmp_path: Path) -> None:
    mos = make_release(tmp_path)
    table = clive.load(tmp_path)
    assert table.paths == [tmp_path / "Images" / n for n in TEST]
    np.testing.assert_allclose(table.scores, mos[7:])
    np.testing.assert_allclose(table.std, mos[7:] / 5)
    assert table.higher_is_better and table.score_range == (0.0, 100.0)
    assert table.split is None and table.reference is None


def test_simple_layout_of_the_shared_copy(tmp_path: Path) -> None:
    fakes.text(
        tmp_path / "mos.csv",
        [
            "image,mos,mos_std,source_name,source_sha256",
            "345.webp,41.3385,19.2654,345.bmp,ab",
            "1121.JPG,76.967,17.6,1121.JPG,cd",
        ],
    )
    fakes.images(tmp_path / "images", ["345.webp", "1121.JPG"])
    table = clive.load(tmp_path)
    assert [p.name for p in table.paths] == ["345.webp", "1121.JPG"]
    np.testing.assert_allclose(table.scores, [41.3385, 76.967])
    np.testing.assert_allclose(table.std, [19.2654, 17.6])


def test_no_layout_names_both_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"Data/AllMOS_release\.mat: missing, and so is .*mos\.csv"):
        clive.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_release(tmp_path, files=TEST[:2])
    with pytest.raises(
        DatasetError, match=r"1 of 3 images listed in .*AllImages_release\.mat are missing \(1024\.JPG\)"
    ):
        clive.load(tmp_path)


def test_mismatched_mat_files(tmp_path: Path) -> None:
    make_release(tmp_path)
    fakes.mat(tmp_path / "Data/AllMOS_release.mat", AllMOS_release=np.ones((1, 4)))
    with pytest.raises(DatasetError, match=r"10 names, 4 MOS and 10 std values"):
        clive.load(tmp_path)
