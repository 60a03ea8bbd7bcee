from __future__ import annotations

from pathlib import Path

import pytest

from reiqa import datasets
from reiqa.datasets import DATASETS, DatasetError, get, names
from reiqa.errors import UnknownNameError
from tests.datasets import fakes

ALL = [
    "live",
    "csiq",
    "tid2013",
    "kadid10k",
    "koniq10k",
    "clive",
    "flive",
    "spaq",
    "pipal",
    "agiqa3k",
    "biq2021",
]


def test_names_in_table_order() -> None:
    assert names() == ALL
    assert all(DATASETS[n].name == n for n in ALL)


def test_table_is_consistent() -> None:
    for spec in DATASETS.values():
        low, high = spec.score_range
        assert low < high and spec.citation and spec.title
        assert spec.load.__module__ == f"reiqa.datasets.{spec.name}"
    assert {n for n, s in DATASETS.items() if s.official_split} == {"koniq10k", "flive", "biq2021"}
    assert {n for n, s in DATASETS.items() if not s.higher_is_better} == {"live", "csiq"}
    assert {n for n, s in DATASETS.items() if s.kind == "synthetic"} == {
        "live",
        "csiq",
        "tid2013",
        "kadid10k",
        "pipal",
    }


def test_get_ignores_case_and_separators() -> None:
    assert get("KADID-10k") is DATASETS["kadid10k"]
    assert get("TID_2013") is DATASETS["tid2013"]


def test_unknown_name_lists_close_matches_and_all() -> None:
    with pytest.raises(UnknownNameError) as info:
        get("koniq")
    message = str(info.value)
    assert (
        "unknown dataset 'koniq'" in message and "close: ['koniq10k']" in message and "'agiqa3k'" in message
    )
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("name", ALL)
def test_every_loader_refuses_an_empty_folder_and_a_missing_one(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match=r"missing"):
        datasets.load(name, tmp_path)
    with pytest.raises(DatasetError, match=r"no such folder; pass the"):
        datasets.load(name, tmp_path / "absent")


def test_load_dispatches_to_the_loader(tmp_path: Path) -> None:
    fakes.text(tmp_path / "dmos.csv", ["dist_img,ref_img,dmos,var", "I01_01_01.png,I01.png,4.5,0.5"])
    fakes.images(tmp_path / "images", ["I01_01_01.png"])
    assert len(datasets.load("kadid10k", str(tmp_path))) == 1
