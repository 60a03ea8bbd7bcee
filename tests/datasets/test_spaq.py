from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, spaq
from tests.datasets import fakes

HEADER = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
ROWS = [
    ["00001.jpg", 42.5, 50, 40, 45, 30, 44],
    ["00002.jpg", 71.0, 60, 55, 66, 20, 70],
    ["00003.jpg", 12.25, 8, 9, 10, 80, 5],
]
WORKBOOK = "MOS and Image attribute scores.xlsx"


def make_spaq(root: Path, *, at: str = "Annotations", rows: list = ROWS, files: int = 3) -> None:
    fakes.xlsx(root / at / WORKBOOK, {"Sheet1": [HEADER, *rows]})
    fakes.images(root / "TestImage", [r[0] for r in ROWS[:files]])


def test_reads_the_annotation_workbook(tmp_path: Path) -> None:
    make_spaq(tmp_path)
    table = spaq.load(tmp_path)
    assert table.paths == [tmp_path / "TestImage" / r[0] for r in ROWS]
    np.testing.assert_allclose(table.scores, [42.5, 71.0, 12.25])
    assert table.higher_is_better and table.score_range == (0.0, 100.0)
    assert table.std is None and table.split is None


def test_workbook_in_the_root_is_accepted(tmp_path: Path) -> None:
    make_spaq(tmp_path, at=".")
    assert len(spaq.load(tmp_path)) == 3


def test_missing_workbook(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"Annotations/MOS and Image attribute scores\.xlsx: missing; is .* SPAQ"
    ):
        spaq.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    make_spaq(tmp_path, files=1)
    with pytest.raises(
        DatasetError, match=r"TestImage: 2 of 3 images listed in .* are missing \(00002\.jpg, 00003"
    ):
        spaq.load(tmp_path)


def test_non_numeric_mos_names_the_row(tmp_path: Path) -> None:
    make_spaq(tmp_path, rows=[ROWS[0], ["00002.jpg", "n/a", 1, 1, 1, 1, 1]])
    with pytest.raises(DatasetError, match=r"row 3: MOS is 'n/a', not a number"):
        spaq.load(tmp_path)
