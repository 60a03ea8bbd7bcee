from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, DatasetSpec, LabelTable, load_csv
from reiqa.errors import ReiqaError
from tests.datasets import fakes


def table(root: Path) -> LabelTable:
    return LabelTable(
        dataset="toy",
        root=root,
        paths=[root / "a.png", root / "sub/b.png", root / "c.png"],
        scores=np.array([1.0, 2.5, 4.0]),
        std=np.array([0.1, 0.2, 0.3]),
        reference=["r1", "r1", "r2"],
        distortion=["blur", "jpeg", "blur"],
        split=["train", "val", "test"],
        higher_is_better=True,
        score_range=(1, 5),
    )


def test_subset_keeps_every_column_in_order(tmp_path: Path) -> None:
    sub = table(tmp_path).subset([2, 0])
    assert len(sub) == 2
    assert sub.paths == [tmp_path / "c.png", tmp_path / "a.png"]
    np.testing.assert_array_equal(sub.scores, [4.0, 1.0])
    np.testing.assert_array_equal(sub.std, [0.3, 0.1])
    assert (
        sub.reference == ["r2", "r1"]
        and sub.distortion == ["blur", "blur"]
        and sub.split == ["test", "train"]
    )
    assert sub.score_range == (1.0, 5.0) and sub.higher_is_better
    assert len(table(tmp_path).subset(np.array([], dtype=np.int64))) == 0


def test_subset_rejects_masks_and_out_of_range(tmp_path: Path) -> None:
    t = table(tmp_path)
    with pytest.raises(TypeError, match=r"np\.flatnonzero"):
        t.subset(np.array([True, False, True]))
    with pytest.raises(IndexError, match="index 3 is out of range for toy with 3 images"):
        t.subset([0, 3])


def test_columns_must_have_one_entry_per_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reference has 2 entries, expected 1"):
        LabelTable("toy", tmp_path, [tmp_path / "a"], [1.0], None, ["x", "y"], None, None, True, (0, 1))
    with pytest.raises(ValueError, match="split values must be in"):
        LabelTable("toy", tmp_path, [tmp_path / "a"], [1.0], None, None, None, ["training"], True, (0, 1))


def test_rows_round_trip_through_load_csv(tmp_path: Path) -> None:
    t = table(tmp_path)
    fakes.images(tmp_path, ["a.png", "sub/b.png", "c.png"])
    rows = t.to_frame_rows()
    assert rows[1] == {
        "image": "sub/b.png",
        "score": 2.5,
        "std": 0.2,
        "reference": "r1",
        "distortion": "jpeg",
        "split": "val",
    }
    out = tmp_path / "labels.csv"
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    back = load_csv(out)
    assert back.paths == t.paths
    np.testing.assert_array_equal(back.scores, t.scores)
    np.testing.assert_array_equal(back.std, t.std)
    assert (back.reference, back.distortion, back.split) == (t.reference, t.distortion, t.split)


def test_dataset_error_is_a_value_error_and_a_reiqa_error() -> None:
    assert issubclass(DatasetError, ValueError) and issubclass(DatasetError, ReiqaError)


def test_spec_checks_its_vocabulary() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        DatasetSpec("x", "X", "natural", "MOS", (0, 1), True, False, lambda root: None, "")  # type: ignore[arg-type,return-value]


def test_split_indices_name_the_items_of_one_part(tmp_path: Path) -> None:
    paths = [tmp_path / n for n in "abc"]
    table = LabelTable(
        "toy", tmp_path, paths, [1.0, 2.0, 3.0], None, None, None, ["test", "train", "train"], True, (0, 5)
    )
    assert table.split_indices("train") == [1, 2] and table.split_indices("val") == []
    with pytest.raises(ValueError, match="split part"):
        table.split_indices("training")
    unsplit = LabelTable("toy", tmp_path, paths, [1.0, 2.0, 3.0], None, None, None, None, True, (0, 5))
    with pytest.raises(ValueError, match="no official split"):
        unsplit.split_indices("train")
