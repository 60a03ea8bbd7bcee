"""int8 encoders (``reiqa quantize``): made from calibration photos with NNCF, kept whole in the
cache, read back checked, with a model id of their own, and picked by ``auto`` only when they met
their accuracy bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reiqa.engines import EngineError
from reiqa.inference import load
from reiqa.io import save_image
from tests.conftest import run_cli, save_tiny_bundle, textured_images

pytest.importorskip("openvino", reason="pip install 'reiqa[int8]'")
pytest.importorskip("nncf", reason="pip install 'reiqa[int8]'")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model, 36 photos, and its int8 encoders quantized into a module-wide cache."""
    import os

    from reiqa.inference.quantize import AccuracyBar, quantize

    root = tmp_path_factory.mktemp("int8")
    old = os.environ.get("REIQA_CACHE")
    os.environ["REIQA_CACHE"] = str(root / "cache")
    model_dir = save_tiny_bundle(root / "model")
    photos = []
    for i in range(36):
        image = textured_images(1, 72 + 8 * (i % 3), 96, seed=i)[0]
        photos.append(save_image(image, root / "photos" / f"{i:02d}.png"))
    (root / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    skipped: list[str] = []
    report = quantize(
        load(model_dir),
        [*photos, root / "photos" / "broken.jpg"],
        bar=AccuracyBar(points=1.0, share=0.99),
        max_reverts=2,
        on_skip=skipped.append,
    )
    try:
        yield model_dir, photos, report, skipped
    finally:
        if old is None:
            del os.environ["REIQA_CACHE"]
        else:
            os.environ["REIQA_CACHE"] = old


def test_quantizing_writes_a_checked_set_and_reports_the_hold_out(made) -> None:
    from reiqa.inference.quantize import int8_dir, read_int8

    model_dir, photos, report, skipped = made
    assert len(skipped) == 1 and "broken.jpg" in skipped[0]  # a bad photo is skipped, said
    assert report.calibration["photos"] + report.holdout["photos"] == len(photos)
    assert report.holdout["photos"] >= 10
    assert 0.0 <= report.holdout["share_within_bar"] <= 1.0
    assert report.passed == (report.holdout["share_within_bar"] >= 0.99)
    quality = report.encoders["quality"]
    assert 0 < quality["int8_convolutions"] <= quality["convolutions"]
    model = load(model_dir)
    found = read_int8(model.features)
    assert found.folder == int8_dir(model.features)
    assert found.precision == f"int8:{report.id}"
    on_disk = json.loads((found.folder / "int8.json").read_text())
    assert on_disk["holdout"] == report.holdout and set(on_disk["files"]) == {"quality.xml", "quality.bin"}


def test_int8_scores_are_close_and_never_mixed_with_float32(made) -> None:
    model_dir, photos, _, _ = made
    fp32 = load(model_dir)
    int8 = load(model_dir, backend="openvino-int8")
    assert int8.backend == "openvino-int8"
    assert int8.model_id != fp32.model_id
    assert int8.model_id != load(model_dir, backend="openvino").model_id
    a = np.array([r.score for r in fp32.score_files(photos)])
    b = np.array([r.score for r in int8.score_files(photos)])
    assert np.all(np.isfinite(b))
    # int8 arithmetic: not the same numbers, but the same ranking of these textures, roughly
    assert not np.array_equal(a, b)
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_auto_picks_int8_only_when_it_met_its_bar(made, monkeypatch) -> None:
    from reiqa.engines import ENGINES
    from reiqa.inference.quantize import read_int8

    if not ENGINES["openvino"].installed():
        pytest.skip("auto picks OpenVINO only where the ONNX exporter is installed")
    model_dir, _, _, _ = made
    meta = read_int8(load(model_dir).features).folder / "int8.json"
    original = meta.read_text()
    try:
        for passed, expected in ((True, "openvino-int8"), (False, "openvino")):
            meta.write_text(json.dumps({**json.loads(original), "passed": passed}))
            assert load(model_dir, backend="auto", images=1000).backend == expected
        assert load(model_dir, backend="auto", images=10).backend == "torch"  # a small job
    finally:
        meta.write_text(original)


def test_a_missing_or_damaged_set_says_what_to_do(made, tmp_path: Path) -> None:
    from reiqa.inference.quantize import read_int8

    model_dir, _, _, _ = made
    other = save_tiny_bundle(tmp_path / "other", seed=1)
    with pytest.raises(EngineError, match=r"no int8 encoders for this model; make them with: reiqa quantize"):
        load(other, backend="openvino-int8")
    folder = read_int8(load(model_dir).features).folder
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    with pytest.raises(EngineError, match="int8 encoders of other weights"):
        read_int8(load(other).features, copy)
    data = bytearray((copy / "quality.bin").read_bytes())
    data[100] ^= 0xFF
    (copy / "quality.bin").write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"quality.bin: missing or not the file int8.json describes"):
        read_int8(load(model_dir).features, copy)


def test_too_few_photos_is_a_clear_error(tmp_path: Path, capsys, monkeypatch) -> None:
    model_dir = save_tiny_bundle(tmp_path / "model")
    photos = [save_image(textured_images(1, 64, 64, seed=i)[0], tmp_path / f"{i}.png") for i in range(12)]
    code, _, err = run_cli(
        ["quantize", *photos, "--model", model_dir, "--out", tmp_path / "q"], capsys, monkeypatch
    )
    assert code != 0
    assert "quantizing needs at least 30 photos (10 held out to check scores); got 12" in err
    assert not (tmp_path / "q").exists()
