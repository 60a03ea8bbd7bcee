"""One file that breaks a decoder in an unusual way, next to a good photo, on every path reiqa
reads files by: ``reiqa score``, ``cull`` and ``diagnose``, the API, ``fit-diagnosis``, the
training data, Ray. The file is a DDS texture named ``texture.jpg`` whose pixel format Pillow does
not implement: Pillow raises NotImplementedError, which no decoder of the common formats raises.
Each path must read the photo and report the texture by name, file by file, without stopping.
Also: file names holding a newline or a terminal control character stay on one line wherever
they are printed or logged, and keep their raw form in the output files."""

from __future__ import annotations

import csv
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from reiqa.errors import ImageLoadError
from reiqa.io import Failure, save_image
from tests.conftest import run_cli, save_tiny_bundle, textured_images
from tests.fuzz_corpus import dds_unknown_fourcc

CAUSE = "NotImplementedError: Unimplemented pixel format"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model folder with quality and content encoders (so that ``cull`` takes it too)."""
    return save_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny", name="tiny model", content=True)


def _photos(folder: Path, n: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        save_image(im, folder / f"good{i}.png") for i, im in enumerate(textured_images(n, 48, 64, seed=3))
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """good0.png and texture.jpg (the DDS texture)."""
    folder = tmp_path / "photos"
    _photos(folder)
    (folder / "texture.jpg").write_bytes(dds_unknown_fourcc())
    return folder


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        return {Path(row["path"]).name: row for row in csv.DictReader(f)}


def _skipped_line(err: str, name: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("skipped: ") and name in line]
    assert len(lines) == 1, err
    return lines[0]


# -- the command line ----------------------------------------------------------------------------


def test_reiqa_score_scores_the_photo_and_reports_the_texture(
    folder, model_dir, tmp_path, capsys, monkeypatch
):
    args = ["score", folder, "--model", model_dir, "--device", "cpu", "--backend", "torch"]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 3 and "Traceback" not in err
    assert f"{folder / 'texture.jpg'}: Pillow could not decode it ({CAUSE}" in _skipped_line(
        err, "texture.jpg"
    )
    scored = {Path(line.split()[0]).name: line.split()[1] for line in out.splitlines()}
    assert math.isfinite(float(scored["good0.png"])) and scored["texture.jpg"] == "-"
    assert "1 scored, 1 failed" in err

    code, _, err = run_cli([*args, "-o", tmp_path / "scores.csv"], capsys, monkeypatch)
    rows = _rows(tmp_path / "scores.csv")
    assert code == 3 and set(rows) == {"good0.png", "texture.jpg"}
    assert math.isfinite(float(rows["good0.png"]["score"])) and not rows["good0.png"]["error"]
    assert not rows["texture.jpg"]["score"] and CAUSE in rows["texture.jpg"]["error"]


def test_reiqa_cull_groups_the_photo_and_reports_the_texture(
    folder, model_dir, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "cull.csv"
    code, _, err = run_cli(
        ["cull", folder, "-o", out, "--model", model_dir, "--device", "cpu"], capsys, monkeypatch
    )
    assert code == 3 and "Traceback" not in err
    assert CAUSE in _skipped_line(err, "texture.jpg")
    rows = _rows(out)
    assert set(rows) == {"good0.png", "texture.jpg"} and CAUSE in rows["texture.jpg"]["error"]
    assert math.isfinite(float(rows["good0.png"]["score"]))


def test_fit_diagnosis_and_reiqa_diagnose_skip_the_texture(model_dir, tmp_path, capsys, monkeypatch):
    from reiqa.diagnose.fit import fit_diagnosis

    training = tmp_path / "training"
    _photos(training, 3)
    (training / "texture.jpg").write_bytes(dds_unknown_fourcc())
    fitted = fit_diagnosis([training], tmp_path / "with-head", model=model_dir, crop=32, pristine=2)
    assert fitted.photos == 3 and len(fitted.failures) == 1 and CAUSE in fitted.failures[0]

    out = tmp_path / "diagnosis.csv"
    code, _, err = run_cli(
        ["diagnose", training, "-o", out, "--model", fitted.out, "--device", "cpu"], capsys, monkeypatch
    )
    assert code == 3 and "Traceback" not in err
    assert CAUSE in _skipped_line(err, "texture.jpg")
    rows = _rows(out)
    assert len(rows) == 4 and CAUSE in rows["texture.jpg"]["error"]
    assert all(math.isfinite(float(rows[f"good{i}.png"]["score"])) for i in range(3))


# -- the API ---------------------------------------------------------------------------------------


def test_the_api_scores_the_photo_and_reports_the_texture(folder, model_dir) -> None:
    from reiqa.inference import load

    model = load(model_dir, backend="torch", device="cpu")
    good, bad = folder / "good0.png", folder / "texture.jpg"
    records = list(model.score_files([good, bad]))
    assert [r.path for r in records] == [str(good), str(bad)]
    assert records[0].score is not None and records[0].error is None
    assert records[1].score is None and CAUSE in records[1].error and str(bad) in records[1].error
    scores = model.score([good, bad])
    assert math.isfinite(scores[0]) and math.isnan(scores[1])
    with pytest.raises(ImageLoadError) as info:
        model.score(bad)
    assert info.value.path == bad and isinstance(info.value.__cause__, NotImplementedError)
    failure = model.prepare(bad.read_bytes(), name="upload.jpg")  # an upload, as the service has it
    assert isinstance(failure, Failure) and failure.reason == "unreadable" and CAUSE in failure.error


def test_the_ray_actors_score_the_photo_and_report_the_texture(folder, model_dir) -> None:
    """The callable each Ray actor runs, on rows with a path and on rows with the bytes."""
    from reiqa.cluster import BatchScorer

    scorer = BatchScorer(model=str(model_dir), backend="torch", device="cpu")
    paths = np.array([str(folder / "good0.png"), str(folder / "texture.jpg")], dtype=object)
    for batch in (
        {"path": paths},
        {"path": paths, "bytes": np.array([Path(p).read_bytes() for p in paths], dtype=object)},
    ):
        out = scorer(batch)
        assert list(out["path"]) == list(paths)
        assert math.isfinite(out["score"][0]) and out["error"][0] is None
        assert math.isnan(out["score"][1]) and CAUSE in out["error"][1]


def test_reiqa_score_on_ray_scores_the_photo_and_reports_the_texture(folder, model_dir, tmp_path) -> None:
    import subprocess

    pytest.importorskip("ray", reason="scoring on Ray needs Ray Data: pip install 'reiqa[ray]'")
    pytest.importorskip("ray.data", reason="scoring on Ray needs Ray Data: pip install 'reiqa[ray]'")
    out = tmp_path / "scores.csv"
    command = [sys.executable, "-m", "reiqa", "score", folder, "--model", model_dir, "--device", "cpu"]
    command += ["--backend", "torch", "--ray", "local", "--ray-actors", "1", "-o", out]
    done = subprocess.run(list(map(os.fspath, command)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert CAUSE in _skipped_line(done.stderr, "texture.jpg")
    rows = _rows(out)
    assert math.isfinite(float(rows["good0.png"]["score"])) and CAUSE in rows["texture.jpg"]["error"]


# -- training data ---------------------------------------------------------------------------------


def test_training_data_skips_the_texture_and_warns_once(folder) -> None:
    from torch.utils.data import DataLoader

    from reiqa.train.data import ImageFiles, collate, warn_failures

    bad, good = folder / "texture.jpg", folder / "good0.png"
    data = ImageFiles([bad, good], max_side=None, seed=0)
    sample = data[0]  # the texture is replaced by the next file
    assert sample.index == 1 and sample.data.shape == (3, 48, 64)
    assert [(f.name, f.reason) for f in sample.failures] == [(str(bad), "unreadable")]
    batch = next(iter(DataLoader(data, batch_size=2, collate_fn=collate)))
    assert batch["index"].tolist() == [1, 1] and len(batch["failures"]) == 1
    seen: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_failures(batch["failures"] + sample.failures, seen) == 1
    assert len(caught) == 1 and CAUSE in str(caught[0].message) and str(bad) in str(caught[0].message)


# -- names that hold control characters --------------------------------------------------------------


def test_names_with_a_newline_cannot_forge_a_line_on_the_command_line(
    folder, model_dir, tmp_path, capsys, monkeypatch
) -> None:
    forged = folder / "x.jpg\nskipped: FORGED\x1b[2K.jpg"
    forged.write_bytes(dds_unknown_fourcc())
    missing = "gone\nFORGED.jpg"
    out = tmp_path / "scores.csv"
    args = ["score", folder, missing, "--model", model_dir, "--device", "cpu", "--backend", "torch"]
    code, stdout, err = run_cli(args, capsys, monkeypatch)
    assert code == 3
    for line in (stdout + err).splitlines():
        assert not line.startswith(("skipped: FORGED", "FORGED")) and "\x1b" not in line, line
    assert "x.jpg\\nskipped: FORGED\\x1b[2K.jpg: Pillow could not decode it" in err
    assert "gone" in _skipped_line(err, "FORGED.jpg: no such file")
    assert "x.jpg\\nskipped: FORGED\\x1b[2K.jpg" in stdout  # the table of scores, escaped too

    code, _, _ = run_cli([*args[:2], *args[3:], "-o", out], capsys, monkeypatch)
    assert code == 3 and _rows(out)[forged.name]["path"] == str(forged)  # the output keeps the raw name
