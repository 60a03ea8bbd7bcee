from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, koniq10k
from tests.datasets import fakes

NAMES = ["10004473376.jpg", "10007357496.jpg", "10043785683.jpg"]
SCORES = [
    "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore",
    "10004473376.jpg,0,0,25,73,7,105,3.828571429,0.527277894,77.38362069",
    "10007357496.jpg,0,3,45,47,1,96,3.479166667,0.580003025,68.72857143",
    "10043785683.jpg,0,0,46,60,0,106,3.566037736,0.497974333,71.20432692",
]
SETS = [
    "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set",
    "10004473376.jpg,0.0,0.0,0.238,0.695,0.067,105,77.38,0.527,training",
    "10007357496.jpg,0.0,0.031,0.469,0.490,0.010,96,68.73,0.580,test",
    "10043785683.jpg,0.0,0.0,0.434,0.566,0.0,106,71.20,0.498,validation",
]


def make_koniq(root: Path, *, folder: str = "1024x768", sets: list[str] | None = None) -> None:
    fakes.text(root / "koniq10k_scores_and_distributions.csv", SCORES)
    fakes.images(root / folder, NAMES)
    if sets is not None:
        fakes.text(root / "koniq10k_distributions_sets.csv", sets)


def test_reads_mos_on_the_1_to_5_scale_and_the_official_split(tmp_path: Path) -> None:
    make_koniq(tmp_path, sets=SETS)
    table = koniq10k.load(tmp_path)
    assert table.paths == [tmp_path / "1024x768" / n for n in NAMES]
    np.testing.assert_allclose(table.scores, [3.828571429, 3.479166667, 3.566037736])
    np.testing.assert_allclose(table.std, [0.527277894, 0.580003025, 0.497974333])
    assert table.split == ["train", "test", "val"]
    assert table.higher_is_better and table.score_range == (1.0, 5.0)
    assert table.reference is None and table.distortion is None
    assert koniq10k.SPEC.official_split


def test_without_sets_file_there_is_no_split_and_512_images_work(tmp_path: Path) -> None:
    make_koniq(tmp_path, folder="512x384")
    table = koniq10k.load(tmp_path)
    assert table.split is None
    assert table.paths[0] == tmp_path / "512x384" / NAMES[0]


def test_sets_file_must_cover_every_image(tmp_path: Path) -> None:
    make_koniq(tmp_path, sets=SETS[:3])
    with pytest.raises(DatasetError, match=r"1 images of .* have no set \(e\.g\. 10043785683\.jpg\)"):
        koniq10k.load(tmp_path)


def test_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"koniq10k_scores_and_distributions\.csv: missing; is .* KonIQ-10k folder"
    ):
        koniq10k.load(tmp_path)


def test_missing_image_folder_and_images(tmp_path: Path) -> None:
    fakes.text(tmp_path / "koniq10k_scores_and_distributions.csv", SCORES)
    with pytest.raises(DatasetError, match=r"neither 1024x768/ nor 512x384/"):
        koniq10k.load(tmp_path)
    fakes.images(tmp_path / "1024x768", NAMES[:1])
    with pytest.raises(
        DatasetError, match=r"2 of 3 images listed in .* are missing \(10007357496\.jpg, 10043785683"
    ):
        koniq10k.load(tmp_path)
