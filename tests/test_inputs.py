"""Inputs: files, folders, globs and CSV lists become one list of image files, the same way for
scoring, feature extraction and training."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from reiqa.digest import file_sha256
from reiqa.errors import DataError
from reiqa.inputs import (
    IMAGE_COLUMNS,
    expand_inputs,
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
    (tmp_path / "big").write_bytes(bytes(range(256)) * 8193)  # more than one 1 MiB chunk
    assert file_sha256(str(tmp_path / "big")) == hashlib.sha256(bytes(range(256)) * 8193).hexdigest()
    assert file_sha256(tmp_path / "f") != file_sha256(tmp_path / "big")


def test_file_sha256_lives_in_the_leaf_module_digest_only() -> None:
    import reiqa.inputs

    assert not hasattr(reiqa.inputs, "file_sha256") and "file_sha256" not in reiqa.inputs.__all__


# --- hostile inputs: missing files, unreadable lists, odd folder entries ---------------------

T = TypeVar("T")
StrPath = str | os.PathLike[str]
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    return buf.getvalue()


def _in_thread(fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Run ``fn`` in a daemon thread; fail (instead of hanging) if it blocks, e.g. on a FIFO."""
    import threading

    out: list[T] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"blocked for over {timeout} s"
    assert out, "raised in the thread"
    return out[0]


def test_expand_inputs_reports_bad_inputs_and_goes_on(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    bad: list[str] = []
    found = expand_inputs(["photos/x.jpg", "b.png", "*.gif", "sub"], bad=bad)
    assert found == [Path("b.png"), Path("sub/d.webp")]
    assert bad == ["photos/x.jpg: no such file or directory", "*.gif: no image files match this pattern"]
    # without ``bad`` the first one still raises (training relies on it)
    with pytest.raises(FileNotFoundError, match=r"photos/x\.jpg"):
        expand_inputs(["b.png", "photos/x.jpg"])
    empty: list[str] = []
    assert expand_inputs(["nope.png"], empty=empty, bad=bad) == [] and empty == []


def test_unreadable_csv_lists_go_to_bad(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("image\ncaf\xe9.png\n".encode("latin-1"))
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("label,mos\na.png,1\n")
    bad: list[str] = []
    assert expand_inputs([latin, nocol, tmp_path / "a.png"], bad=bad) == [tmp_path / "a.png"]
    assert len(bad) == 2
    assert bad[0].startswith(f"{latin}: not a UTF-8 text file") and "\n" not in bad[0]
    assert bad[1].startswith(f"{nocol}: needs a column of image paths") and "label" in bad[1]
    with pytest.raises(DataError, match=r"latin\.csv: not a UTF-8"):
        expand_inputs([latin])


def test_a_csv_list_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    listing = tmp_path / "excel.csv"
    listing.write_bytes(b"\xef\xbb\xbfImage,MOS\r\na.png,3.5\r\n")  # what Excel's "CSV UTF-8" writes
    assert read_image_list(listing) == [(tmp_path / "a.png").resolve()]


@needs_fifo
def test_folder_scan_lists_everything_that_looks_like_an_image(tmp_path: Path) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    png = _png_bytes()
    (d / "real.png").write_bytes(png)
    (d / "noext").write_bytes(png)  # found by its signature
    (d / "photo.dat").write_bytes(b"\xff\xd8\xff\xe0" + bytes(20))
    (d / "vector").write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    (d / "drawing.SVG").write_text("<svg/>")
    (d / "shot.avif").write_bytes(b"x")
    (d / "shot.heic").write_bytes(b"x")
    (d / "dsc.NEF").write_bytes(b"x")
    (d / "layers.psd").write_bytes(b"x")
    (d / "notes.txt").write_text("BM is not a bitmap\n")
    (d / "data.csv").write_text("a,b\n")
    os.mkfifo(d / "pipe.png")  # listed by suffix, never opened
    os.mkfifo(d / "pipe")  # no suffix: not opened to look for a signature, so not listed
    os.symlink(d / "gone.jpg", d / "dangling.jpg")
    os.symlink(d / "loop.png", d / "loop.png")
    os.symlink(d / "real.png", d / "alias")  # a link to a regular file is read like one
    (d / ".hidden.png").write_bytes(png)
    (d / "._real.png").write_bytes(b"x")  # macOS resource fork
    (d / "folder.jpg").mkdir()
    (d / "folder.jpg" / "inner.jpg").write_bytes(png)
    (d / ".thumbnails").mkdir()
    (d / ".thumbnails" / "t.png").write_bytes(png)
    os.symlink(d, d / "again")  # a link back to the folder: followed, visited once
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "linked.png").write_bytes(png)
    os.symlink(elsewhere, d / "shortcut")  # a link to another folder is followed

    top = [
        ".hidden.png", "alias", "dangling.jpg", "drawing.SVG", "dsc.NEF", "layers.psd", "loop.png",
        "noext", "photo.dat", "pipe.png", "real.png", "shot.avif", "shot.heic", "vector",
    ]  # fmt: skip
    assert _in_thread(lambda: find_images([d])) == [d / n for n in sorted(top)]
    assert _in_thread(lambda: find_images([d], recursive=True)) == sorted(
        [d / n for n in top] + [d / "folder.jpg" / "inner.jpg", d / "shortcut" / "linked.png"]
    )
    # globs keep what looks like an image too, instead of "no image files match"
    assert find_images([str(d / "*.SVG")]) == [d / "drawing.SVG"]
    assert find_images([str(d / "p*")]) == [d / "photo.dat", d / "pipe.png"]


@needs_fifo
def test_odd_entries_named_explicitly_are_kept_for_loading_to_report(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    names = [tmp_path / "pipe", tmp_path / "dangling.jpg", tmp_path / "loop"]
    assert _in_thread(lambda: find_images(names)) == names


def test_unlistable_folders_are_reported(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scandir = os.scandir

    def refusing(path: StrPath) -> Iterator[os.DirEntry[str]]:
        if Path(path).name in ("sub", "deeper"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    bad: list[str] = []
    assert expand_inputs([tree], recursive=True, bad=bad) == [tree / n for n in ("a.JPG", "b.png", "c.Png")]
    assert bad == [f"{tree / 'sub'}: cannot list this folder (Permission denied)"]
    assert expand_inputs([tree / "sub", tree / "b.png"], bad=bad) == [tree / "b.png"]
    assert bad[-1] == f"{tree / 'sub'}: cannot list this folder (Permission denied)"
    with pytest.raises(PermissionError, match="sub: cannot list this folder"):
        find_images([tree / "sub"])
