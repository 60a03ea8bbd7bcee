"""Inputs: files, folders, globs and CSV lists become one list of image files, the same way for
scoring, feature extraction and training."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reiqa.errors import DataError
from reiqa.inputs import (
    IMAGE_COLUMNS,
    expand_inputs,
    file_sha256,
    find_column,
    find_images,
    list_training_images,
    read_image_list,
)

# --- finding files ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in ["b.png", "a.JPG", "c.Png", "notes.txt", "sub/d.webp", "sub/deeper/e.tif", "sub/x.csv"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    return tmp_path


def test_find_images_in_directory(tree: Path) -> None:
    assert find_images([tree]) == [tree / "a.JPG", tree / "b.png", tree / "c.Png"]


def test_find_images_recursive(tree: Path) -> None:
    assert find_images([tree], recursive=True) == [
        tree / "a.JPG",
        tree / "b.png",
        tree / "c.Png",
        tree / "sub" / "d.webp",
        tree / "sub" / "deeper" / "e.tif",
    ]


def test_find_images_globs(tree: Path) -> None:
    assert find_images([str(tree / "*.p*")]) == [tree / "b.png"]  # glob itself is case-sensitive here
    assert find_images([str(tree / "**" / "*.tif")]) == [tree / "sub" / "deeper" / "e.tif"]
    with pytest.raises(FileNotFoundError, match=r"\*\.gif"):
        find_images([str(tree / "*.gif")])


def test_find_images_order_duplicates_and_explicit_files(tree: Path) -> None:
    found = find_images([tree / "sub" / "d.webp", tree / "notes.txt", tree, str(tree / "b.png")])
    assert found == [
        tree / "sub" / "d.webp",
        tree / "notes.txt",
        tree / "a.JPG",
        tree / "b.png",
        tree / "c.Png",
    ]


def test_find_images_missing_input(tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        find_images([tree, tree / "nothing-here"])
    with pytest.raises(TypeError, match="list"):
        find_images(str(tree))  # type: ignore[arg-type]


@pytest.mark.parametrize("column", ["Image_path", "image_name", "path", "IMAGE", "file"])
def test_a_csv_list_is_read_by_any_usual_column_name(tmp_path: Path, column: str) -> None:
    (tmp_path / "imgs").mkdir()
    for name in ("0.png", "3.png"):
        (tmp_path / "imgs" / name).write_bytes(b"x")
    csv = tmp_path / "list.csv"
    csv.write_text(f"{column},mos\nimgs/0.png,1\nimgs/3.png,2\n,3\n")
    assert read_image_list(csv) == [(tmp_path / "imgs" / n).resolve() for n in ("0.png", "3.png")]
    # the same table for every command: scoring and training read the same rows
    assert expand_inputs([csv]) == list_training_images([csv])


def test_a_csv_list_without_a_path_column_is_refused_naming_the_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("label,mos\n0.png,1\n")
    with pytest.raises(DataError, match=r"bad\.csv.*column.*label"):
        read_image_list(bad)


def test_find_column_ignores_case_and_follows_the_table_order() -> None:
    assert find_column(["MOS", "Path", "Image"], IMAGE_COLUMNS) == "Image"
    assert find_column(["mos"], IMAGE_COLUMNS) is None


def test_expand_inputs_lists_each_file_once_however_it_is_named(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    found = expand_inputs(["b.png", str(tree / "b.png"), tree, "./sub/../a.JPG"])
    assert [p.name for p in found] == ["b.png", "a.JPG", "c.Png"]


def test_expand_inputs_reports_inputs_without_images(tree: Path) -> None:
    empty: list[str] = []
    (tree / "nothing").mkdir()
    assert expand_inputs([tree / "nothing", tree / "b.png"], empty=empty) == [tree / "b.png"]
    assert empty == [str(tree / "nothing")]


def test_training_lists_search_folders_recursively_and_need_one_image(tree: Path, tmp_path: Path) -> None:
    assert {p.name for p in list_training_images([tree / "sub"])} == {"d.webp", "e.tif"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        list_training_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError):
        list_training_images([tmp_path / "missing"])


def test_file_sha256_hashes_the_bytes(tmp_path: Path) -> None:
    import hashlib

    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert os.path.getsize(tmp_path / "f") == 3000
