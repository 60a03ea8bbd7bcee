from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, flive
from tests.datasets import fakes

NAMES = [
    "blur_dataset/motion0044.jpg",
    "voc_emotic_ava/AVA__129332.jpg",
    "voc_emotic_ava/EMOTIC__2ccz61xjvddut42ywu.jpg",
    "voc_emotic_ava/JPEGImages__2007_001630.jpg",
]
LABELS = ["name,mos", *(f"{n},{s}" for n, s in zip(NAMES, ["75.44", "58.65", "74.07", "0.0"], strict=True))]
TRAIN_VAL = [
    "name_image,mos_image,is_valid",
    f"{NAMES[0]},75.44,False",
    f"{NAMES[1]},58.65,True",
    f"{NAMES[3]},0.0,False",
]
TEST = ["mos_image,name_image,width_image,height_image", f"74.07,{NAMES[2]},1024,683"]


def make_flive(root: Path, *, files: list[str] = NAMES) -> None:
    fakes.text(root / "labels_image.csv", LABELS)
    fakes.images(root, files)


@pytest.mark.parametrize("split_file", ["labels=640_padded.csv", "labels<=640_padded.csv"])
def test_reads_labels_and_the_official_split(tmp_path: Path, split_file: str) -> None:
    make_flive(tmp_path)
    fakes.text(tmp_path / split_file, TRAIN_VAL)
    fakes.text(tmp_path / "labels640.csv", TEST)
    table = flive.load(tmp_path)
    assert table.paths == [tmp_path / n for n in NAMES]
    np.testing.assert_allclose(table.scores, [75.44, 58.65, 74.07, 0.0])
    assert table.split == ["train", "val", "test", "train"]
    assert table.higher_is_better and table.std is None and table.score_range == (0.0, 100.0)


def test_without_split_files_there_is_no_split(tmp_path: Path) -> None:
    make_flive(tmp_path)
    assert flive.load(tmp_path).split is None


def test_split_files_that_disagree(tmp_path: Path) -> None:
    make_flive(tmp_path)
    fakes.text(tmp_path / "labels=640_padded.csv", TRAIN_VAL)
    fakes.text(tmp_path / "labels640.csv", [*TEST, f"70.0,{NAMES[1]},800,700"])
    with pytest.raises(
        DatasetError, match=r"labels640\.csv, line 3: .*AVA__129332\.jpg' is a test image but .* for val"
    ):
        flive.load(tmp_path)


def test_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"labels_image\.csv: missing; is .* the FLIVE database folder"):
        flive.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_flive(tmp_path, files=NAMES[:3])
    with pytest.raises(
        DatasetError, match=r"1 of 4 images listed in .* are missing \(voc_emotic_ava/JPEGImages__2007"
    ):
        flive.load(tmp_path)
