from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, tid2013
from tests.datasets import fakes

LINES = ["5.51429 i01_01_1.bmp", "4.5 i01_10_5.bmp", "6.2 i25_24_3.bmp", "3.1 i02_08_2.bmp"]
FILES = ["i01_01_1.bmp", "i01_10_5.bmp", "I25_24_3.BMP", "i02_08_2.bmp"]  # case differs in one copy


def make_tid(
    root: Path, *, lines: list[str] = LINES, std: list[str] | None = None, files: list[str] = FILES
) -> None:
    fakes.text(root / "mos_with_names.txt", lines)
    fakes.text(root / "mos_std.txt", std if std is not None else ["0.13", "0.2", "0.11", "0.15"])
    fakes.images(root / "distorted_images", files)
    fakes.images(root / "reference_images", ["I01.BMP", "i25.bmp"])


def test_reads_mos_names_and_std(tmp_path: Path) -> None:
    make_tid(tmp_path)
    table = tid2013.load(tmp_path)
    assert [p.name for p in table.paths] == FILES
    assert all(p.is_file() for p in table.paths)
    np.testing.assert_allclose(table.scores, [5.51429, 4.5, 6.2, 3.1])
    np.testing.assert_allclose(table.std, [0.13, 0.2, 0.11, 0.15])
    assert table.reference == ["I01", "I01", "I25", "I02"]
    assert table.distortion == [
        "additive_gaussian_noise",
        "jpeg",
        "sparse_sampling_and_reconstruction",
        "gaussian_blur",
    ]
    assert table.higher_is_better is True and table.score_range == (0.0, 9.0)


def test_distortion_table_has_24_types() -> None:
    assert len(tid2013.DISTORTIONS) == len(set(tid2013.DISTORTIONS)) == 24


def test_std_file_is_optional_but_must_match(tmp_path: Path) -> None:
    make_tid(tmp_path, std=["0.1", "0.2"])
    with pytest.raises(DatasetError, match=r"mos_std\.txt: 2 values for the 4 images"):
        tid2013.load(tmp_path)
    (tmp_path / "mos_std.txt").unlink()
    assert tid2013.load(tmp_path).std is None


def test_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"mos_with_names\.txt: missing; is .* the TID2013 folder"):
        tid2013.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_tid(tmp_path, files=FILES[:1])
    with pytest.raises(
        DatasetError, match=r"3 of 4 images listed in .*mos_with_names\.txt are missing \(i01_10_5"
    ):
        tid2013.load(tmp_path)


def test_bad_line_is_named(tmp_path: Path) -> None:
    make_tid(tmp_path, lines=[*LINES[:2], "x.y i01_01_2.bmp"], std=["1", "1", "1"])
    with pytest.raises(DatasetError, match=r"line 3: MOS is 'x\.y', not a number"):
        tid2013.load(tmp_path)
