from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, pipal
from tests.datasets import fakes


def make_pipal(root: Path, *, skip: str | None = None) -> None:
    fakes.text(root / "Train_Label/A0001.txt", ["A0001_00_00.bmp,1432.1", "A0001_10_02.bmp,1601.5"])
    fakes.text(root / "Train_Label/A0002.txt", ["A0002_03_01.bmp,1210.75"])
    placed = {
        "Distortion_1": ["A0001_00_00.bmp"],
        "Distortion_2": ["A0001_10_02.bmp"],
        "Distortion_4": ["A0002_03_01.bmp"],
    }
    for folder, names in placed.items():
        fakes.images(root / folder, [n for n in names if n != skip])
    fakes.images(root / "Train_Ref", ["A0001.bmp", "A0002.bmp"])


def test_reads_elo_labels_across_distortion_folders(tmp_path: Path) -> None:
    make_pipal(tmp_path)
    table = pipal.load(tmp_path)
    assert table.paths == [
        tmp_path / "Distortion_1/A0001_00_00.bmp",
        tmp_path / "Distortion_2/A0001_10_02.bmp",
        tmp_path / "Distortion_4/A0002_03_01.bmp",
    ]
    np.testing.assert_allclose(table.scores, [1432.1, 1601.5, 1210.75])
    assert table.reference == ["A0001", "A0001", "A0002"]
    assert table.distortion == ["00", "10", "03"]
    assert table.higher_is_better and pipal.SPEC.score == "Elo"


def test_missing_label_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"Train_Label: missing; is .* the PIPAL training folder"):
        pipal.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_pipal(tmp_path, skip="A0001_10_02.bmp")
    with pytest.raises(
        DatasetError, match=r"1 of 3 images listed in .*Train_Label \(first in A0001\.txt\) .*A0001_10_02"
    ):
        pipal.load(tmp_path)


def test_image_in_two_folders(tmp_path: Path) -> None:
    make_pipal(tmp_path)
    fakes.image(tmp_path / "Distortion_3/A0001_00_00.bmp")
    with pytest.raises(DatasetError, match=r"A0001_00_00\.bmp: also in .*Distortion_1"):
        pipal.load(tmp_path)


def test_bad_line(tmp_path: Path) -> None:
    make_pipal(tmp_path)
    fakes.text(tmp_path / "Train_Label/A0003.txt", ["A0003_00_00.bmp 1500"])
    with pytest.raises(DatasetError, match=r"A0003\.txt, line 1: 'A0003_00_00\.bmp 1500'; expected"):
        pipal.load(tmp_path)
