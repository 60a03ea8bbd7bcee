"""``reiqa diagnose`` and ``ReIQA.diagnose``: records, output files, bad files, a model without a
head."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

import reiqa
from reiqa.distortions.issues import ISSUES
from reiqa.errors import ImageLoadError, ModelError
from reiqa.io import load_image
from tests.diagnose.conftest import run_cli

ORDER = ["wide.png", "notes.jpg", "tall.jpg", "cut.jpg"]


def _check(record, model) -> None:
    assert record.error is None and record.issue in ISSUES and 0.0 <= record.severity <= 1.0
    assert list(record.probabilities) == list(model.diagnosis.classes)
    assert sum(record.probabilities.values()) == pytest.approx(1.0)
    assert record.issue == max(record.probabilities, key=record.probabilities.get)


def test_the_api_diagnoses_what_score_takes_with_the_same_scores(head_model, photos) -> None:
    model = reiqa.load(head_model)
    one = model.diagnose(photos["wide.png"])
    _check(one, model)
    assert one.score == pytest.approx(model.score(photos["wide.png"]), abs=1e-9)
    records = model.diagnose([photos[n] for n in ORDER])
    assert [r.path for r in records] == [str(photos[n]) for n in ORDER]
    assert records[0] == one and records[2].score == pytest.approx(model.score(photos["tall.jpg"]), abs=1e-9)
    for bad in (records[1], records[3]):
        assert bad.score is None and bad.issue is None and bad.probabilities is None
        assert bad.error.startswith(bad.path)
    batch = model.diagnose(load_image(photos["wide.png"])[None].repeat(2, 1, 1, 1).numpy())
    assert [r.path for r in batch] == ["the array[0]", "the array[1]"]
    assert batch[0].probabilities == pytest.approx(one.probabilities, abs=1e-6)
    with pytest.raises(ImageLoadError, match=r"notes\.jpg"):
        model.diagnose(photos["notes.jpg"])


def test_a_model_without_a_head_says_so_and_how_to_fit_one(plain_model, photos, capsys, monkeypatch) -> None:
    model = reiqa.load(plain_model)
    assert model.diagnosis is None
    with pytest.raises(ModelError, match=r"no diagnosis head.*reiqa fit-diagnosis"):
        model.diagnose(photos["wide.png"])
    code, _, err = run_cli(["diagnose", photos["wide.png"], "--model", plain_model], capsys, monkeypatch)
    assert code == 1 and "no diagnosis head" in err and "reiqa fit-diagnosis" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_csv_has_the_columns_and_bad_files_are_rows_with_their_error(
    head_model, photos, tmp_path, capsys, monkeypatch
) -> None:
    out = tmp_path / "diagnosis.csv"
    args = ["diagnose", *(photos[n] for n in ORDER), "--model", head_model, "-o", out, "--device", "cpu"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 3  # two files failed; the others were diagnosed
    assert "2 diagnosed into" in err and "2 failed" in err and "notes.jpg" in err and "cut.jpg" in err
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["path", "score", "issue", "severity", "error", *(f"p_{c}" for c in ISSUES)]
    assert [r["path"] for r in rows] == [str(photos[n]) for n in ORDER]
    good, bad = rows[0], rows[1]
    assert good["issue"] in ISSUES and good["error"] == "" and 0 <= float(good["severity"]) <= 1
    assert sum(float(good[f"p_{c}"]) for c in ISSUES) == pytest.approx(1.0)
    assert bad["score"] == bad["issue"] == bad["severity"] == bad["p_blur"] == ""
    assert bad["error"].startswith(str(photos["notes.jpg"]))
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 1 and "exists" in err and "--overwrite" in err


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_json_outputs_hold_every_probability(
    head_model, photos, tmp_path, capsys, monkeypatch, suffix
) -> None:
    out = tmp_path / f"d.{suffix}"
    names = ["tall.jpg", "cut.jpg"]
    code, _, _ = run_cli(
        ["diagnose", *(photos[n] for n in names), "--model", head_model, "-o", out], capsys, monkeypatch
    )
    assert code == 3
    text = out.read_text()
    rows = json.loads(text) if suffix == "json" else [json.loads(line) for line in text.splitlines()]
    assert [set(r) for r in rows] == [{"path", "score", "issue", "severity", "probabilities", "error"}] * 2
    assert list(rows[0]["probabilities"]) == list(ISSUES) and rows[0]["error"] is None
    assert rows[1]["probabilities"] is None and "cut.jpg" in rows[1]["error"]


def test_without_output_a_table_is_printed(head_model, photos, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["diagnose", photos["wide.png"], "--model", head_model], capsys, monkeypatch)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["path", "score", "issue", "severity"]
    record = reiqa.load(head_model).diagnose(photos["wide.png"])
    assert row.split() == [
        str(photos["wide.png"]),
        f"{record.score:.2f}",
        record.issue,
        f"{record.severity:.2f}",
    ]
    assert "1 diagnosed, 0 failed" in err


def test_maps_are_written_for_the_photos_that_were_read(
    head_model, photos, tmp_path, capsys, monkeypatch
) -> None:
    from PIL import Image

    folder = tmp_path / "maps"
    args = ["diagnose", *(photos[n] for n in ORDER), "--model", head_model, "--map", folder]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 3 and "2 heat map(s) written" in err
    assert sorted(p.name for p in folder.iterdir()) == ["tall.png", "wide.png"]
    for name, source in (("wide.png", "wide.png"), ("tall.png", "tall.jpg")):
        with Image.open(folder / name) as png, Image.open(photos[source]) as photo:
            assert png.format == "PNG" and max(png.size) == 800
            assert png.size[0] / png.size[1] == pytest.approx(photo.size[0] / photo.size[1], rel=0.01)
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 1 and "wide.png: exists" in err  # refused before any work
    assert np.isfinite(reiqa.load(head_model).score(photos["wide.png"]))


def test_the_head_reads_tiles_of_the_size_it_was_fitted_on(head_model, photos) -> None:
    """A 96 x 128 photo and a head fitted on 32 px crops: 3 x 4 tiles through the quality encoder
    alone; the photo's probabilities and severity are the tiles' means."""
    from reiqa.diagnosis import tile_positions
    from reiqa.features import encode
    from reiqa.inference.pipeline import encoders_for

    model = reiqa.load(head_model)
    head = model.diagnosis
    image = model.prepare(photos["wide.png"])
    assert tile_positions(96, 32) == (0, 32, 64) and tile_positions(128, 32) == (0, 32, 64, 96)
    assert tile_positions(100, 32) == (0, 23, 45, 68) and tile_positions(20, 32) == (0,)
    assert tile_positions(10_000, 32)[-1] == 10_000 - 32 and len(tile_positions(10_000, 32)) == 6
    encoders = encoders_for(model.features, head.blocks)
    assert [b for b, _ in encoders.blocks()] == ["quality_full", "quality_half"]
    tiles = torch.stack([image[:, y : y + 32, x : x + 32] for y in (0, 32, 64) for x in (0, 32, 64, 96)])
    p, s = head.predict(encode(encoders, tiles), layout=tuple(encoders.blocks()))
    record = model.diagnose(image)
    assert list(record.probabilities.values()) == pytest.approx(list(p.mean(0)), abs=1e-6)
    assert record.severity == pytest.approx(float(s.mean()), abs=1e-6)


def test_a_stopped_run_resumes_from_its_partial_rows(head_model, photos, tmp_path, monkeypatch) -> None:
    from reiqa.diagnose import run as diagnose_run
    from reiqa.inference.model import ReIQA

    out = tmp_path / "diagnosis.jsonl"
    inputs = [photos[n] for n in ORDER]
    real = ReIQA.diagnose_files
    diagnosed: list[list[str]] = []

    def stop_after_two(self, paths, **kwargs):
        diagnosed.append([str(p) for p in paths])
        for i, record in enumerate(real(self, paths, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield record

    monkeypatch.setattr(ReIQA, "diagnose_files", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        diagnose_run.diagnose_inputs(inputs, out, model=head_model, device="cpu")
    partial = out.with_name(".diagnosis.jsonl.partial.jsonl")
    assert not out.exists() and len(partial.read_text().splitlines()) == 3  # the header and two rows

    def record_paths(self, paths, **kwargs):
        diagnosed.append([str(p) for p in paths])
        return real(self, paths, **kwargs)

    diagnosed.clear()
    monkeypatch.setattr(ReIQA, "diagnose_files", record_paths)
    run = diagnose_run.diagnose_inputs(inputs, out, model=head_model, device="cpu")
    assert run.resumed == 2 and diagnosed == [[str(photos[n]) for n in ORDER[2:]]]
    assert not partial.exists()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(photos[n]) for n in ORDER]
    fresh = reiqa.load(head_model).diagnose([photos[n] for n in ORDER])
    for row, record in zip(rows, fresh, strict=True):
        assert row["score"] == (None if record.score is None else pytest.approx(record.score, abs=1e-9))
        assert row["issue"] == record.issue and (row["error"] is None) == (record.error is None)


def test_partial_rows_of_another_head_or_of_a_changed_file_are_done_again(
    head_model, photos, tmp_path
) -> None:
    import shutil

    from reiqa.diagnose.run import Partial

    wide = tmp_path / "wide.png"
    shutil.copyfile(photos["wide.png"], wide)
    out = tmp_path / "d.csv"
    record = reiqa.load(head_model).diagnose(wide)
    with Partial(out, "head-a") as partial:
        partial.add(record)
    assert list(Partial(out, "head-a").done) == [str(wide)]
    assert Partial(out, "head-b").done == {}
    os.utime(wide, ns=(1, 1))
    assert Partial(out, "head-a").done == {}
