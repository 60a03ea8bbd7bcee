from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, load_csv
from tests.datasets import fakes


def write(tmp_path: Path, lines: list[str], images: tuple[str, ...] = ("a.png", "b.png", "c.png")) -> Path:
    fakes.images(tmp_path / "imgs", images)
    return fakes.text(tmp_path / "imgs" / "scores.csv", lines)


def test_guesses_common_column_names(tmp_path: Path) -> None:
    path = write(tmp_path, ["Image_Name,MOS,SD", "a.png,3.5,0.4", "b.png,1.5,0.2"])
    table = load_csv(path)
    assert table.dataset == "scores" and table.root == tmp_path / "imgs"
    assert table.paths == [tmp_path / "imgs/a.png", tmp_path / "imgs/b.png"]
    np.testing.assert_array_equal(table.scores, [3.5, 1.5])
    np.testing.assert_array_equal(table.std, [0.4, 0.2])
    assert table.score_range == (1.5, 3.5) and table.higher_is_better


def test_explicit_columns_root_and_direction(tmp_path: Path) -> None:
    fakes.images(tmp_path / "pics", ["a.png", "b.png"])
    path = fakes.text(tmp_path / "labels.csv", ["file_id,dmos", "a.png,10", "b.png,20"])
    table = load_csv(
        path, image_column="file_id", score_column="dmos", root=tmp_path / "pics", higher_is_better=False
    )
    assert table.paths[1] == tmp_path / "pics/b.png" and not table.higher_is_better


def test_no_guessable_column(tmp_path: Path) -> None:
    path = write(tmp_path, ["image,dmos", "a.png,1", "b.png,2"])
    with pytest.raises(
        DatasetError,
        match=r"no score column among the usual names .* \(it has \['image', 'dmos'\]\); pass score_column=",
    ):
        load_csv(path)


def test_named_column_missing(tmp_path: Path) -> None:
    path = write(tmp_path, ["image,mos", "a.png,1", "b.png,2"])
    with pytest.raises(
        DatasetError, match=r"no column 'quality' \(it has \['image', 'mos'\]\); pass score_column="
    ):
        load_csv(path, score_column="quality")


def test_duplicate_images(tmp_path: Path) -> None:
    path = write(tmp_path, ["image,mos", "a.png,1", "b.png,2", "a.png,3"])
    with pytest.raises(DatasetError, match=r"'a\.png' is listed twice \(line 2 and line 4\)"):
        load_csv(path)


@pytest.mark.parametrize(
    ("value", "shown"), [("abc", "'abc', not a number"), ("nan", "'nan'"), ("", "empty, not a number")]
)
def test_bad_scores_name_the_line(tmp_path: Path, value: str, shown: str) -> None:
    path = write(tmp_path, ["image,mos", "a.png,1", f"b.png,{value}"])
    with pytest.raises(DatasetError, match=rf"scores\.csv, line 3: mos is {shown}"):
        load_csv(path)


def test_fewer_than_two_rows(tmp_path: Path) -> None:
    path = write(tmp_path, ["image,mos", "a.png,1"])
    with pytest.raises(DatasetError, match=r"1 data row\(s\); at least 2"):
        load_csv(path)


def test_missing_file_and_missing_images(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.csv: no such file"):
        load_csv(tmp_path / "nope.csv")
    path = write(tmp_path, ["image,mos", "a.png,1", "zz.png,2", "yy.png,3"])
    with pytest.raises(
        DatasetError,
        match=r"2 of 3 images listed in .*scores\.csv are missing \(zz\.png, yy\.png\); "
        r"give the folder .*--root",
    ):
        load_csv(path)
