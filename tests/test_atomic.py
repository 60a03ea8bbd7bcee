"""The one writer of whole files: a target is replaced whole or not at all, no temporary file is
left behind, permissions survive, and the data reaches the disk before the rename."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from reiqa import atomic
from reiqa.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_target_is_replaced_whole_by_what_the_writer_wrote(tmp_path: Path) -> None:
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".weights.bin.") and tmp.suffix == ".tmp"
        tmp.write_bytes(b"new, longer than the old")
        assert target.read_bytes() == b"old"  # nothing moves before the block ends
    assert target.read_bytes() == b"new, longer than the old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.txt"
    write_text_atomic(target, "x")
    assert target.read_text() == "x"


def test_an_error_in_the_block_removes_the_temporary_file_and_keeps_the_old_target(tmp_path: Path) -> None:
    target = tmp_path / "table.safetensors"
    target.write_bytes(b"complete old file")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"complete old file"
    assert [p.name for p in tmp_path.iterdir()] == ["table.safetensors"]


def test_a_writer_that_fails_before_creating_the_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    with pytest.raises(ValueError), atomic_path(target):
        raise ValueError("bad input")
    assert list(tmp_path.iterdir()) == []


def test_a_block_that_writes_nothing_is_an_error_and_keeps_the_target(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_an_existing_targets_permissions_are_kept_and_a_new_file_gets_the_usual_ones(tmp_path: Path) -> None:
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    write_text_atomic(kept, "new")
    assert kept.read_text() == "new" and _mode(kept) == 0o640
    fresh = tmp_path / "fresh.txt"
    write_bytes_atomic(fresh, b"x")
    assert _mode(fresh) == 0o666 & ~_umask()
    # a writer that creates its file for the owner only (safetensors' save_file does) still
    # leaves a new target with the usual permissions: model folders readable by their group
    private = tmp_path / "private.bin"
    with atomic_path(private) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    assert _mode(private) == 0o666 & ~_umask()


def test_the_file_is_synced_before_the_rename_and_the_folder_after(tmp_path: Path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    folder_fd = os.open(tmp_path, os.O_RDONLY)
    folder_inode = os.fstat(folder_fd).st_ino
    os.close(folder_fd)

    def fsync(fd: int) -> None:
        events.append("fsync folder" if os.fstat(fd).st_ino == folder_inode else "fsync file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    write_bytes_atomic(tmp_path / "x.bin", b"data")
    assert events == ["fsync file", "replace", "fsync folder"]


def test_text_and_json_helpers(tmp_path: Path) -> None:
    name = "caf\udce9.jpg"  # a file name that is not UTF-8, as os.fsdecode gives it
    write_text_atomic(tmp_path / "names.txt", name, errors="surrogateescape")
    assert (tmp_path / "names.txt").read_bytes() == b"caf\xe9.jpg"
    write_json_atomic(tmp_path / "a.json", {"b": [1, 2]})
    assert (tmp_path / "a.json").read_text() == json.dumps({"b": [1, 2]}, indent=2)
    write_json_atomic(tmp_path / "c.json", {"b": 1}, indent=None)
    assert (tmp_path / "c.json").read_text() == '{"b": 1}'


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_figures_keep_the_format_of_their_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    """The temporary name has no suffix: the format must still follow the target's."""
    from reiqa.plots import new_figure, save_figure

    figure = new_figure(2, 2)
    figure.subplots().plot([0, 1], [1, 0])
    out = save_figure(figure, tmp_path / "plots" / f"curve{suffix}")
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_a_pair_cache_is_a_plain_npy_file(tmp_path: Path, monkeypatch) -> None:
    """np.save given a path would name the file '<temporary>.npy'; the cache must be the target."""
    from reiqa import ranking

    pairs = np.arange(12, dtype=np.float32).reshape(3, 4)

    class Model:
        def model_id(self, **_: object) -> str:
            return "m"

    monkeypatch.setattr(ranking, "load_image", lambda p: None)
    monkeypatch.setattr(ranking, "degradation_pairs", lambda *a, **k: pairs)
    first = ranking.degradation_pairs_of_files(Model(), ["a.png"], cache=tmp_path / "cache")
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and not files[0].name.startswith(".")
    monkeypatch.setattr(ranking, "degradation_pairs", lambda *a, **k: pytest.fail("not read from the cache"))
    np.testing.assert_array_equal(
        ranking.degradation_pairs_of_files(Model(), ["a.png"], cache=tmp_path / "cache"), first
    )
