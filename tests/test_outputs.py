"""Score output files: lock, provenance, repairs of torn rows, retries, resolved-path keys."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from reiqa.errors import OutputError
from reiqa.outputs import Provenance, ScoreOutput, ScoreRecord

MODEL = Provenance("aaaa", "model A", {"max_side": 1024, "min_side": None, "compat": False})
OTHER = Provenance("bbbb", "model B", {"max_side": 256, "min_side": None, "compat": False})


def _write(path: Path, rows: list[ScoreRecord], provenance: Provenance = MODEL, **kw) -> ScoreOutput:
    with ScoreOutput(path, provenance, **kw) as out:
        out.write(rows)
    return out


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("name", ["scores.txt", "scores", "scores.csv.bak"])
def test_a_bad_suffix_is_refused_with_the_allowed_ones(tmp_path, name) -> None:
    with pytest.raises(OutputError, match=r"must end in \.csv, \.jsonl or \.json"):
        ScoreOutput(tmp_path / name, MODEL)


def test_a_folder_as_output_is_refused(tmp_path) -> None:
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(OutputError, match=r"out\.csv: is a folder"):
        ScoreOutput(tmp_path / "out.csv", MODEL).__enter__()


def test_an_output_folder_that_cannot_be_made_is_an_error_naming_it(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file: cannot create the output folder"):
        ScoreOutput(tmp_path / "file" / "out.csv", MODEL).__enter__()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_a_read_only_folder_is_an_error_naming_it(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"cannot write in .*ro"):
            ScoreOutput(folder / "out.csv", MODEL).__enter__()
    finally:
        folder.chmod(0o700)


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    with ScoreOutput(out, MODEL) as first:
        first.write([ScoreRecord("a.jpg", 1.0, None)])
        with pytest.raises(OutputError, match="another reiqa run is writing this output"):
            ScoreOutput(out, MODEL).__enter__()
    with ScoreOutput(out, MODEL) as again:  # released on leaving
        assert set(again.done) == {again.key("a.jpg")}
    assert _csv(out) == [["path", "score", "error"], ["a.jpg", "1.0", ""]]  # one header


def test_another_models_output_is_refused_unless_overwritten(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("a.jpg", 1.0, None)])
    with pytest.raises(OutputError, match=r"model A.*max_side=1024.*model B.*max_side=256.*--overwrite"):
        ScoreOutput(out, OTHER).__enter__()
    assert _csv(out)[1] == ["a.jpg", "1.0", ""]  # untouched
    _write(out, [ScoreRecord("b.jpg", 2.0, None)], OTHER, overwrite=True)
    assert _csv(out) == [["path", "score", "error"], ["b.jpg", "2.0", ""]]
    record = json.loads((tmp_path / ".scores.csv.reiqa.json").read_text())
    assert record["model_id"] == "bbbb" and record["options"]["max_side"] == 256


def test_a_file_reiqa_did_not_write_is_never_replaced_without_overwrite(tmp_path) -> None:
    precious = tmp_path / "precious.csv"
    precious.write_text("name,value\nx,1\n")
    with pytest.raises(OutputError, match=r"precious\.csv: exists and was not written by .*--overwrite"):
        ScoreOutput(precious, MODEL).__enter__()
    assert precious.read_text() == "name,value\nx,1\n"


def test_a_torn_last_csv_row_is_dropped_and_not_glued_to_the_next(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("a.jpg", 1.5, None), ScoreRecord("b.jpg", 2.5, None)])
    out.write_bytes(out.read_bytes()[:-4])  # "b.jpg,2" : a torn row (no newline)
    with ScoreOutput(out, MODEL) as again:
        assert again.repair.torn == 1
        assert set(again.done) == {again.key("a.jpg")}
        again.write([ScoreRecord("b.jpg", 2.5, None)])
    assert _csv(out) == [["path", "score", "error"], ["a.jpg", "1.5", ""], ["b.jpg", "2.5", ""]]


def test_a_glued_row_is_dropped_and_its_files_scored_again(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("a.jpg", 1.5, None)])
    with out.open("a") as f:  # what an older writer left: a torn row glued to the next one
        f.write("b.jpg,2c.jpg,3.0,\n")
    with ScoreOutput(out, MODEL) as again:
        assert again.repair.torn == 1 and set(again.done) == {again.key("a.jpg")}


def test_a_torn_jsonl_line_does_not_break_later_runs(tmp_path) -> None:
    out = tmp_path / "scores.jsonl"
    _write(out, [ScoreRecord("a.jpg", 1.5, None), ScoreRecord("b.jpg", 2.5, None)])
    out.write_bytes(out.read_bytes()[:-10])
    for _ in range(2):
        with ScoreOutput(out, MODEL) as again:
            if again.key("b.jpg") not in again.done:
                again.write([ScoreRecord("b.jpg", 2.5, None)])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in lines] == ["a.jpg", "b.jpg"]


def test_failed_rows_are_retried_and_kept_until_then(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    rows = [ScoreRecord("a.jpg", 1.5, None), ScoreRecord("bad.jpg", None, "bad.jpg: truncated")]
    _write(out, [*rows, ScoreRecord("other.jpg", None, "other.jpg: empty")])
    with ScoreOutput(out, MODEL) as again:
        assert again.todo([Path("a.jpg"), Path("bad.jpg"), Path("bad.jpg")]) == [Path("bad.jpg")]
        assert again.repair.retried == 1
        again.write([ScoreRecord("bad.jpg", 3.0, None)])
    assert again.failures() == 1  # other.jpg, not named in this run, keeps its row
    assert [r[:2] for r in _csv(out)[1:]] == [["a.jpg", "1.5"], ["other.jpg", ""], ["bad.jpg", "3.0"]]


def test_a_crash_after_a_retry_keeps_both_rows_and_the_next_run_takes_the_last(tmp_path) -> None:
    out = tmp_path / "scores.jsonl"
    _write(out, [ScoreRecord("bad.jpg", None, "bad.jpg: truncated")])
    crashed = ScoreOutput(out, MODEL).__enter__()
    crashed.write([ScoreRecord("bad.jpg", 3.0, None)])
    crashed._file.close()  # killed: __exit__ never runs
    crashed._unlock()
    with ScoreOutput(out, MODEL) as again:
        assert again.repair.repeated == 1 and again.done[again.key("bad.jpg")].score == 3.0


def test_rows_are_keyed_by_resolved_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("photos/a.jpg", 1.5, None)])
    monkeypatch.chdir(tmp_path / "photos")  # a later run from elsewhere, absolute and relative names
    with ScoreOutput(out, MODEL) as again:
        assert list(again.todo([tmp_path / "photos" / "a.jpg", Path("a.jpg"), Path("../photos/a.jpg")])) == []
        again.write([ScoreRecord("b.jpg", 2.0, None)])  # relative to this run's folder
    monkeypatch.chdir(tmp_path)
    with ScoreOutput(out, MODEL) as third:
        assert list(third.todo([Path("photos/b.jpg"), Path("photos/c.jpg")])) == [Path("photos/c.jpg")]


def test_a_repeated_row_keeps_the_last(tmp_path) -> None:
    out = tmp_path / "scores.jsonl"
    _write(out, [ScoreRecord("a.jpg", 1.0, None), ScoreRecord("a.jpg", 2.0, None)])
    with ScoreOutput(out, MODEL) as again:
        assert again.repair.repeated == 1 and again.done[again.key("a.jpg")].score == 2.0
    assert len(out.read_text().splitlines()) == 1


def test_json_output_is_rebuilt_from_its_log_after_a_crash(tmp_path) -> None:
    out = tmp_path / "scores.json"
    _write(out, [ScoreRecord("a.jpg", 1.0, None)])
    assert json.loads(out.read_text()) == [{"path": "a.jpg", "score": 1.0, "error": None}]
    # a second run crashes after one batch: its log holds b, the finished file a
    crashed = ScoreOutput(out, MODEL).__enter__()
    crashed.write([ScoreRecord("b.jpg", 2.0, None)])
    crashed._file.close()
    crashed._unlock()
    assert json.loads(out.read_text()) == [{"path": "a.jpg", "score": 1.0, "error": None}]  # still there
    with ScoreOutput(out, MODEL) as again:
        assert set(again.done) == {again.key("a.jpg"), again.key("b.jpg")}
        again.write([ScoreRecord("c.jpg", 3.0, None)])
    assert [r["path"] for r in json.loads(out.read_text())] == ["a.jpg", "b.jpg", "c.jpg"]
    assert not (tmp_path / ".scores.json.partial.jsonl").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux only")
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_file_names_that_are_not_utf8_round_trip(tmp_path, suffix) -> None:
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1, not UTF-8: a lone surrogate in Python
    out = tmp_path / f"scores{suffix}"
    _write(out, [ScoreRecord(name, 1.0, None), ScoreRecord("b.jpg", 2.0, None)])
    with ScoreOutput(out, MODEL) as again:
        assert again.repair.torn == 0
        assert list(again.todo([Path(name), Path("c.jpg")])) == [Path("c.jpg")]


def test_rows_with_a_nul_byte_are_torn_not_a_crash(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("a.jpg", 1.0, None)])
    with out.open("a") as f:
        f.write("\x00\x00\x00,\x00,\n")  # a block of zeros after a power loss
    with ScoreOutput(out, MODEL) as again:
        assert again.repair.torn == 1 and set(again.done) == {again.key("a.jpg")}


def test_a_link_to_an_output_shares_its_lock_and_record(tmp_path) -> None:
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("a.jpg", 1.0, None)])
    link = tmp_path / "link.csv"
    link.symlink_to(out)
    with ScoreOutput(out, MODEL), pytest.raises(OutputError, match="another reiqa run"):
        ScoreOutput(link, MODEL).__enter__()
    _write(link, [ScoreRecord("b.jpg", 2.0, None)])
    assert link.is_symlink() and [r[0] for r in _csv(out)[1:]] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize(
    ("record", "field"),
    [({"options": "max_side=1"}, "options"), ({"base": 5}, "base"), ({"model_id": None}, "model_id")],
)
def test_a_hostile_provenance_record_is_an_error_naming_it(tmp_path, record, field) -> None:
    out = tmp_path / "scores.csv"
    _write(out, [ScoreRecord("a.jpg", 1.0, None)])
    path = tmp_path / ".scores.csv.reiqa.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **record}))
    with pytest.raises(OutputError, match=rf"\.scores\.csv\.reiqa\.json: field '{field}'"):
        ScoreOutput(out, MODEL).__enter__()


def test_relative_rows_follow_a_moved_folder(tmp_path, monkeypatch) -> None:
    first = tmp_path / "project"
    (first / "photos").mkdir(parents=True)
    monkeypatch.chdir(first)
    _write(first / "scores.csv", [ScoreRecord("photos/a.jpg", 1.0, None)])
    moved = tmp_path / "moved"
    first.rename(moved)
    monkeypatch.chdir(moved)
    with ScoreOutput(moved / "scores.csv", MODEL) as again:
        assert again.todo([Path("photos/a.jpg")]) == []
