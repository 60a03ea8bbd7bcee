from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, kadid10k
from tests.datasets import fakes

CSV = [
    "dist_img,ref_img,dmos,var",
    "I01_01_01.png,I01.png,4.57,0.496",
    "I01_10_05.png,I01.png,1.23,0.42",
    "I02_25_03.png,I02.png,3.0,0.61",
]
NAMES = ["I01_01_01.png", "I01_10_05.png", "I02_25_03.png"]


def make_kadid(root: Path, *, lines: list[str] = CSV, files: list[str] = NAMES) -> None:
    fakes.text(root / "dmos.csv", lines)
    fakes.images(root / "images", [*files, "I01.png", "I02.png"])


def test_reads_dmos_csv(tmp_path: Path) -> None:
    make_kadid(tmp_path)
    table = kadid10k.load(tmp_path)
    assert table.paths == [tmp_path / "images" / n for n in NAMES]
    np.testing.assert_allclose(table.scores, [4.57, 1.23, 3.0])
    np.testing.assert_allclose(table.std, [0.496, 0.42, 0.61])
    assert table.higher_is_better is True and kadid10k.SPEC.score == "DMOS"
    assert table.reference == ["I01", "I01", "I02"]
    assert table.distortion == ["gaussian_blur", "jpeg", "contrast_change"]
    assert len(kadid10k.DISTORTIONS) == len(set(kadid10k.DISTORTIONS)) == 25


def test_missing_label_file_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        kadid10k.load(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}/dmos.csv: missing; is {tmp_path} the KADID-10k folder (it holds dmos.csv and images/)?"
    )


def test_points_at_a_nested_copy(tmp_path: Path) -> None:
    make_kadid(tmp_path / "kadid10k")
    with pytest.raises(DatasetError, match=r"kadid10k/dmos\.csv exists, so pass .*kadid10k"):
        kadid10k.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_kadid(tmp_path, files=NAMES[1:])
    with pytest.raises(
        DatasetError, match=r"images: 1 of 3 images listed in .*dmos\.csv are missing \(I01_01_01\.png\)"
    ):
        kadid10k.load(tmp_path)


def test_missing_image_folder(tmp_path: Path) -> None:
    fakes.text(tmp_path / "dmos.csv", CSV)
    with pytest.raises(DatasetError, match=r"images: image folder missing"):
        kadid10k.load(tmp_path)


def test_missing_column_lists_the_header(tmp_path: Path) -> None:
    make_kadid(tmp_path, lines=["dist_img,ref_img,mos,var", "I01_01_01.png,I01.png,4.57,0.496"])
    with pytest.raises(
        DatasetError, match=r"no column 'dmos' \(it has \['dist_img', 'ref_img', 'mos', 'var'\]\)"
    ):
        kadid10k.load(tmp_path)


def test_duplicate_rows_are_named(tmp_path: Path) -> None:
    make_kadid(tmp_path, lines=[*CSV, CSV[1]])
    with pytest.raises(DatasetError, match=r"'I01_01_01\.png' is listed twice \(line 2 and line 5\)"):
        kadid10k.load(tmp_path)
