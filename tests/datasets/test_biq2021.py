from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, biq2021
from tests.datasets import fakes

# the published layout: "Image Name,MOS" and two empty columns; names "ssNN (k).jpg"
TRAIN = ["Image Name,MOS,,", "ss03 (3753).jpg,0.8471,,", "ss01 (1726).jpg,0.2874,,", "ss02 (1014).JPG,0.5,,"]
TEST = ["Image Name,MOS,,", "ss03 (5659).jpg,0.7372", "ss02 (7).jpg,0.1"]


def make_biq(root: Path, *, files: list[str] | None = None) -> None:
    fakes.text(root / "Train (Images and MOS).csv", TRAIN)
    fakes.text(root / "Test (Images and MOS).csv", TEST)
    # one extension differs in case from its row, as in the release
    fakes.images(
        root / "Images",
        files or ["ss03 (3753).jpg", "ss01 (1726).jpg", "ss02 (1014).jpg", "ss03 (5659).jpg", "ss02 (7).jpg"],
    )


def test_reads_both_splits_subsets_and_matches_names_ignoring_case(tmp_path: Path) -> None:
    make_biq(tmp_path)
    table = biq2021.load(tmp_path)
    assert [p.name for p in table.paths] == [
        "ss03 (3753).jpg",
        "ss01 (1726).jpg",
        "ss02 (1014).jpg",  # the row says .JPG
        "ss03 (5659).jpg",
        "ss02 (7).jpg",
    ]
    np.testing.assert_allclose(table.scores, [0.8471, 0.2874, 0.5, 0.7372, 0.1])
    assert table.split == ["train", "train", "train", "test", "test"]
    assert table.distortion == ["ss03", "ss01", "ss02", "ss03", "ss02"]
    assert table.higher_is_better and table.score_range == (0.0, 1.0) and table.std is None
    assert table.dataset == "biq2021"


def test_missing_images_and_files_are_named(tmp_path: Path) -> None:
    make_biq(tmp_path, files=["ss03 (3753).jpg"])
    with pytest.raises(DatasetError, match=r"4 of 5 images .*missing.*ss01 \(1726\)\.jpg"):
        biq2021.load(tmp_path)
    (tmp_path / "Test (Images and MOS).csv").unlink()
    with pytest.raises(DatasetError, match=r"Test \(Images and MOS\)\.csv: missing"):
        biq2021.load(tmp_path)


def test_a_row_listed_twice_or_misnamed_is_an_error_naming_the_line(tmp_path: Path) -> None:
    make_biq(tmp_path)
    fakes.text(tmp_path / "Test (Images and MOS).csv", [*TEST, "SS01 (1726).jpg,0.3"])
    with pytest.raises(DatasetError, match="line"):
        biq2021.load(tmp_path)
    fakes.text(tmp_path / "Test (Images and MOS).csv", [*TEST, "photo.jpg,0.3"])
    with pytest.raises(DatasetError, match=r"line 4: image name 'photo\.jpg' is not of the published form"):
        biq2021.load(tmp_path)
    fakes.text(tmp_path / "Test (Images and MOS).csv", [*TEST, "ss01 (9).jpg,high"])
    with pytest.raises(DatasetError, match=r"line 4.*MOS"):
        biq2021.load(tmp_path)
