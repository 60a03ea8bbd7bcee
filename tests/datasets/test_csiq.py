from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, csiq
from tests.datasets import fakes

HEADER = [None, None, None, "image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]
ROWS = [
    [None, None, None, 1600, 1, "noise", 1, 0.061, 0.062],
    [None, None, None, "aerial_city", 5, "jpeg 2000", 3, 0.09, 0.41],
    [None, None, None, 1600, 3, "blur", 2, 0.1, 0.25],
    [None, None, None, "aerial_city", 6, "contrast", 4, 0.12, 0.33],
]
FILES = [
    "awgn/1600.AWGN.1.png",
    "jpeg2000/aerial_city.jpeg2000.3.png",
    "blur/1600.blur.2.png",  # the published name is 1600.BLUR.2.png: case must not matter
    "contrast/aerial_city.contrast.4.png",
]


def make_csiq(
    root: Path, *, sheet: str = "all_by_image", rows: list | None = None, files: list | None = None
) -> None:
    title = [["CSIQ DMOS"], [], ["all images"]]
    fakes.xlsx(root / "csiq.DMOS.xlsx", {sheet: [*title, HEADER, *(ROWS if rows is None else rows), []]})
    fakes.images(root / "dst_imgs", FILES if files is None else files)
    fakes.image(root / "dst_imgs/fnoise/1600.fnoise.5.png")  # on disk but not rated: not loaded
    fakes.image(root / "src_imgs/1600.png")


def test_reads_the_published_workbook(tmp_path: Path) -> None:
    make_csiq(tmp_path)
    table = csiq.load(tmp_path)
    assert table.paths == [tmp_path / "dst_imgs" / name for name in FILES]
    np.testing.assert_allclose(table.scores, [0.062, 0.41, 0.25, 0.33])
    np.testing.assert_allclose(table.std, [0.061, 0.09, 0.1, 0.12])
    assert table.reference == ["1600", "aerial_city", "1600", "aerial_city"]
    assert table.distortion == ["awgn", "jpeg2000", "blur", "contrast"]
    assert table.higher_is_better is False and table.score_range == (0.0, 1.0)
    assert table.split is None


def test_missing_workbook(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"csiq\.DMOS\.xlsx: missing; is .* the CSIQ folder"):
        csiq.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_csiq(tmp_path, files=FILES[:2])
    with pytest.raises(
        DatasetError, match=r"2 of 4 images listed in .*csiq\.DMOS\.xlsx are missing \(blur/1600\.BLUR\.2"
    ):
        csiq.load(tmp_path)


def test_wrong_sheet_lists_the_sheets(tmp_path: Path) -> None:
    make_csiq(tmp_path, sheet="Sheet1")
    with pytest.raises(DatasetError, match=r"no sheet 'all_by_image' \(it has \['Sheet1'\]\)"):
        csiq.load(tmp_path)


def test_unknown_distortion_names_the_row(tmp_path: Path) -> None:
    make_csiq(tmp_path, rows=[[None, None, None, 1600, 1, "noize", 1, 0.06, 0.06]])
    with pytest.raises(DatasetError, match=r"row 5: image '1600' with dst_type 'noize'"):
        csiq.load(tmp_path)
