"""Scoring: the API, the CLI, a folder of awkward and broken files, resumable outputs."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import reiqa
from reiqa.cli import app
from reiqa.errors import ModelError
from reiqa.inference import assemble
from reiqa.models.backbones import build_backbone
from reiqa.regress import QualityRegressor
from tests.conftest import save_tiny_bundle, textured_images

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_bundle(tmp_path_factory.mktemp("model") / "bundle")


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _rgb(h, w, seed=0):
    return (textured_images(1, h, w, seed=seed)[0].permute(1, 2, 0) * 255).round().byte().numpy()


@pytest.fixture(scope="module")
def awkward_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("awkward")
    (d / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "text.jpg").write_text("this is not a picture")
    Image.fromarray((np.arange(48 * 48).reshape(48, 48) * 20).astype(np.uint16)).save(d / "gray16.png")
    Image.fromarray(_rgb(40, 56)).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(_rgb(40, 56)).convert("L").save(d / "gray.jpg")
    rgba = Image.fromarray(_rgb(40, 40)).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(d / "alpha.png")
    Image.fromarray(_rgb(40, 40)).convert("P").save(d / "palette.png")
    frames = [Image.fromarray(_rgb(32, 32, seed=s)) for s in range(3)]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(32, 48)).save(d / "rotated.jpg", exif=exif)
    Image.fromarray(_rgb(1, 1)).save(d / "one.png")
    Image.fromarray(_rgb(900, 1200)).save(d / "large.jpg")
    Image.new("1", (20000, 14000)).save(d / "too many pixels.png")  # 280 Mpx > the 2^28 default limit
    Image.fromarray(_rgb(33, 47)).save(d / "name with spaces ünïcødé.png")
    (d / "folder.jpg").mkdir()
    return d


GOOD = {
    "gray16.png",
    "cmyk.jpg",
    "gray.jpg",
    "alpha.png",
    "palette.png",
    "animated.gif",
    "rotated.jpg",
    "one.png",
    "large.jpg",
    "name with spaces ünïcødé.png",
}
BAD = {"empty.jpg", "truncated.jpg", "text.jpg", "too many pixels.png"}


def test_a_folder_of_awkward_files_is_scored_and_the_bad_ones_reported(
    model_dir, awkward_folder, tmp_path
) -> None:
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        app, ["score", str(awkward_folder), "--model", str(model_dir), "-o", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 3, result.output  # some files failed
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in _rows(out)}
    assert set(rows) == GOOD | BAD  # the directory named folder.jpg is not a file, not listed
    for name in GOOD:
        assert rows[name]["score"] and not rows[name]["error"], name
    causes = {
        "empty.jpg": "empty",
        "truncated.jpg": "truncated",
        "text.jpg": "not an image",
        "too many pixels.png": "pixels",
    }
    for name, cause in causes.items():
        assert rows[name]["score"] == "" and cause in rows[name]["error"] and name in rows[name]["error"]
    # a second run scores nothing new, retries the bad files (still bad: exit 3), one row each
    again = runner.invoke(app, ["score", str(awkward_folder), "--model", str(model_dir), "-o", str(out)])
    assert again.exit_code == 3 and "0 scored, 4 failed, 10 already" in again.output
    assert len(_rows(out)) == 14


def test_an_explicit_directory_named_like_an_image_is_reported(model_dir, awkward_folder) -> None:
    result = runner.invoke(
        app,
        [
            "score",
            str(awkward_folder / "folder.jpg"),
            str(awkward_folder / "gray.jpg"),
            "--model",
            str(model_dir),
        ],
    )
    assert result.exit_code == 3 and "folder.jpg: no image files found" in result.output


def test_the_pixel_limit_named_in_the_error_is_an_option(model_dir, awkward_folder) -> None:
    args = [
        "score",
        str(awkward_folder / "large.jpg"),
        str(awkward_folder / "gray.jpg"),
        "--model",
        str(model_dir),
    ]
    assert runner.invoke(app, args).exit_code == 0
    limited = runner.invoke(app, [*args, "--max-pixels", "500000"])
    assert limited.exit_code == 3
    assert "large.jpg: the image is 1200x900" in limited.output and "--max-pixels" in limited.output
    assert re.search(r"gray\.jpg\s+-?\d+\.\d{3}", limited.output)  # the other file is still scored


def test_resume_after_a_crash_scores_only_what_is_missing(model_dir, awkward_folder, tmp_path) -> None:
    out = tmp_path / "scores.jsonl"
    good = sorted(p for p in awkward_folder.iterdir() if p.name in GOOD)
    assert (
        runner.invoke(
            app, ["score", *map(str, good[:4]), "--model", str(model_dir), "-o", str(out)]
        ).exit_code
        == 0
    )
    first = out.read_text().splitlines()
    result = runner.invoke(app, ["score", *map(str, good), "--model", str(model_dir), "-o", str(out)])
    assert result.exit_code == 0 and "6 scored, 0 failed, 4 already" in result.output
    lines = out.read_text().splitlines()
    assert lines[:4] == first and len(lines) == 10


def test_json_output_and_api_agree_with_the_cli(model_dir, awkward_folder, tmp_path) -> None:
    out = tmp_path / "scores.json"
    files = [awkward_folder / "gray.jpg", awkward_folder / "alpha.png"]
    assert (
        runner.invoke(app, ["score", *map(str, files), "--model", str(model_dir), "-o", str(out)]).exit_code
        == 0
    )
    rows = json.loads(out.read_text())
    model = reiqa.load(model_dir)
    assert [r["score"] for r in rows] == pytest.approx([model.score(f) for f in files], abs=1e-9)
    many = model.score([*files, awkward_folder / "text.jpg"])
    assert np.isnan(many[2]) and many[:2] == pytest.approx([r["score"] for r in rows])
    assert model.score(files[0]) == model.score(files[0])  # deterministic
    x = textured_images(2, 40, 40)
    batch = model.score(x)
    # float32 encoders: one image alone and in a batch of two differ by ~1e-7 relative (oneDNN)
    assert batch.shape == (2,) and model.score(x[0]) == pytest.approx(batch[0], abs=1e-4)
    with pytest.raises(reiqa.ImageLoadError, match=r"text\.jpg"):
        model.score(awkward_folder / "text.jpg")


def test_a_few_images_print_a_table_and_bad_bundles_are_refused(model_dir, awkward_folder, tmp_path) -> None:
    result = runner.invoke(app, ["score", str(awkward_folder / "gray.jpg"), "--model", str(model_dir)])
    assert result.exit_code == 0 and "gray.jpg" in result.output
    with pytest.raises(FileNotFoundError, match=r"model\.json"):
        reiqa.load(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="format"):
        reiqa.load(broken)


def test_bundle_from_encoder_files_and_a_fitted_regressor(tmp_path, awkward_folder) -> None:
    from reiqa.models.checkpoints import save_encoder

    torch.manual_seed(1)
    save_encoder(
        tmp_path / "quality" / "encoder", build_backbone("resnet18"), arch="resnet18", input_norm="none"
    )
    images = sorted(p for p in awkward_folder.iterdir() if p.name in GOOD)[:6]
    feats = tmp_path / "f.safetensors"
    assert (
        runner.invoke(
            app,
            [
                "features",
                *map(str, images),
                "--quality",
                str(tmp_path / "quality" / "encoder.json"),
                "--out",
                str(feats),
                "--device",
                "cpu",
            ],
        ).exit_code
        == 0
    )
    scores = tmp_path / "scores.csv"
    scores.write_text("image,mos\n" + "".join(f"{p.name},{10 * i + 5}\n" for i, p in enumerate(images)))
    fitted = runner.invoke(
        app,
        [
            "fit",
            "--features",
            str(feats),
            "--scores",
            str(scores),
            "--images",
            str(awkward_folder),
            "--out",
            str(tmp_path / "reg"),
        ],
    )
    assert fitted.exit_code == 0, fitted.output
    info = json.loads((tmp_path / "reg" / "regressor.json").read_text())["info"]
    from reiqa.digest import file_sha256

    assert info["scores"] == {"file": "scores.csv", "sha256": file_sha256(scores)}  # no folders
    assert info["features"] == {"file": feats.name, "sha256": file_sha256(feats)}

    def make_bundle(out: str, *options: str):
        encoder = tmp_path / "quality" / "encoder.json"
        args = ["bundle", "--quality", str(encoder), "--regressor", str(tmp_path / "reg")]
        return runner.invoke(app, [*args, "--out", str(tmp_path / out), *options])

    made = make_bundle("model", "--name", "mine")
    assert made.exit_code == 0, made.output
    model = reiqa.load(tmp_path / "model")
    assert model.name == "mine" and model.score_range == (5.0, 55.0)
    # float16 weights: the bundle's scores stay close to the float32 pipeline's
    from reiqa.features import FeatureTable

    table = FeatureTable.load(feats)
    expected = model.regressor.predict(table.features)
    assert model.score([Path(p) for p in table.paths]) == pytest.approx(expected, rel=1e-2, abs=0.5)
    # features extracted with other options (or other weights) cannot be bundled with these
    refused = make_bundle("model-capped", "--max-side", "16")
    assert isinstance(refused.exception, ModelError) and "feature options" in str(refused.exception)
    assert not (tmp_path / "model-capped" / "model.json").exists()


def test_bundle_keeps_each_encoders_input_normalisation(tmp_path) -> None:
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(8, 1024 + 2560)), rng.uniform(0, 1, 8))
    model = assemble(
        build_backbone("resnet18"),
        build_backbone("efficientnet_lite0"),
        regressor,
        quality_arch="resnet18",
        content_arch="efficientnet_lite0",
        content_norm="tf-lite",
        name="effnet content",
    )
    model.save(tmp_path / "m", half=False)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["content"]["input_norm"] == "tf-lite" and meta["quality"]["input_norm"] == "none"
    loaded = reiqa.load(tmp_path / "m")
    assert loaded.features.content_norm.kind == "tf-lite"
    x = textured_images(2, 48, 64)
    np.testing.assert_allclose(loaded.score(x), model.score(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"score": {"range": ["low", 9], "higher_is_better": True}}, "score.range"),
        ({"score": {"range": [0, 100], "higher_is_better": "yes"}}, "score.higher_is_better"),
        ({"features": {"max_side": -5, "min_side": None, "compat": False}}, "features.max_side"),
        ({"features": {"max_side": 512, "min_side": None, "compat": "no"}}, "features.compat"),
        ({"features": {"max_side": 512, "colour": True}}, "features: unknown"),
        (
            {"quality": {"arch": "resnet99", "input_norm": "none", "file": "quality.safetensors"}},
            "quality.arch",
        ),
        (
            {"quality": {"arch": "resnet18", "input_norm": "bgr", "file": "quality.safetensors"}},
            "quality.input_norm",
        ),
        ({"quality": {"arch": "resnet18", "input_norm": "none", "file": "../x.safetensors"}}, "quality.file"),
        ({"quality": None}, "needs a quality and/or a content encoder"),
        ({"name": 7}, "name must be str"),
        ({"score": {"range": [0, 1], "units": "MOS"}}, "score: unknown field"),
    ],
)
def test_a_bad_model_card_field_is_an_error_naming_the_file_and_field(
    model_dir, tmp_path, change, field
) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    card = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**card, **change}))
    with pytest.raises(ModelError, match=rf"model\.json: .*{re.escape(field)}"):
        reiqa.load(folder)
    result = runner.invoke(app, ["score", str(model_dir), "--model", str(folder)])
    assert result.exit_code != 0 and "model.json" in str(result.exception or result.output)


def test_the_model_card_round_trips_through_json(model_dir) -> None:
    from reiqa.inference import ModelCard

    model = reiqa.load(model_dir)
    card = model.card
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    assert card.score.range == (0.0, 100.0) and card.quality.arch == "resnet18" and card.content is None
    smaller = model.with_options(max_side=32)
    assert smaller.card.features.max_side == 32 and smaller.max_side == 32
    assert model.max_side is None and card.features.max_side is None  # the model and its card are unchanged
    assert smaller.model_id != model.model_id and smaller.features is model.features
    with pytest.raises(AttributeError):
        model.max_side = 32  # a model cannot change once built
    # keys of the user's own are kept
    mine = ModelCard.from_dict({**card.to_dict(), "licence": "CC-BY-4.0"})
    assert mine.extra == {"licence": "CC-BY-4.0"} and mine.to_dict()["licence"] == "CC-BY-4.0"


def test_score_reads_a_csv_list_by_the_same_column_names_as_fit(model_dir, awkward_folder, tmp_path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(
        f"image_name,mos\n{awkward_folder / 'gray.jpg'},50\n{awkward_folder / 'alpha.png'},60\n"
    )
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", str(listing), "--model", str(model_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in _rows(out)] == ["gray.jpg", "alpha.png"]


def test_the_public_api_is_reiqa_load_and_reiqa_reiqa(model_dir) -> None:
    import subprocess
    import sys

    assert isinstance(reiqa.load(model_dir), reiqa.ReIQA)
    # importing reiqa alone stays light: no torch until a model is asked for
    probe = "import sys, reiqa; assert 'torch' not in sys.modules; reiqa.ReIQA; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


# -- a broken copy of the shipped model: one file or field at a time ------------------------------


@pytest.fixture(scope="module")
def default_dir():
    from importlib import resources

    with resources.as_file(resources.files("reiqa") / "weights" / "default") as folder:
        yield Path(folder)


def _json_edit(change):
    def edit(path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")  # NaN is written as NaN, as json does

    return edit


def _card(section: str, key: str, value: object):
    return _json_edit(lambda d: d[section].__setitem__(key, value))


def _drop(section: str | None, key: str):
    return _json_edit(lambda d: (d[section] if section else d).pop(key))


def _tensors(change):
    """Rewrite a safetensors file with ``change`` applied to its (float32 or float16) tensors."""

    def edit(path: Path) -> None:
        from safetensors.numpy import load_file, save_file

        arrays = load_file(str(path))
        change(arrays)
        save_file(arrays, str(path))

    return edit


def _set_first(key: str, value: float):
    def change(arrays: dict) -> None:
        arrays[key] = arrays[key].copy()
        arrays[key].flat[0] = value

    return change


def _bytes(cut):
    return lambda path: path.write_bytes(cut(path.read_bytes()))


def _shorter(arrays: dict) -> None:
    for key in ("mean", "scale", "coef"):
        arrays[key] = arrays[key][:-1].copy()


BROKEN = [
    # model.json
    pytest.param("model.json", _card("features", "max_side", -5), "features.max_side", id="max_side<1"),
    pytest.param("model.json", _card("features", "max_side", "1024"), "features.max_side", id="max_side-str"),
    pytest.param("model.json", _card("features", "min_side", 0), "features.min_side", id="min_side=0"),
    pytest.param("model.json", _card("features", "pooling", "max"), "features.pooling", id="pooling"),
    pytest.param(
        "model.json", _card("score", "range", [90, 10]), r"score.range .*low < high", id="range-reversed"
    ),
    pytest.param("model.json", _card("score", "range", [0, math.nan]), "score.range", id="range-nan"),
    pytest.param("model.json", _card("score", "range", [1]), "score.range", id="range-one"),
    pytest.param("model.json", _card("score", "higher_is_better", 1), "score.higher_is_better", id="hib-int"),
    pytest.param("model.json", _card("quality", "arch", ["resnet18"]), "quality.arch", id="arch-list"),
    pytest.param("model.json", _drop("quality", "arch"), "quality.arch is missing", id="arch-missing"),
    pytest.param(
        "model.json", _card("content", "input_norm", "bgr"), "content.input_norm", id="norm-unknown"
    ),
    pytest.param("model.json", _drop(None, "format"), "format is missing", id="format-missing"),
    pytest.param(
        "model.json", _bytes(lambda b: b[: len(b) // 2]), "cannot read the model card", id="card-torn"
    ),
    pytest.param("model.json", _bytes(lambda b: b""), "cannot read the model card", id="card-empty"),
    # regressor.json
    pytest.param("regressor.json", _drop(None, "intercept"), "intercept is missing", id="intercept-missing"),
    pytest.param(
        "regressor.json", _json_edit(lambda d: d.update(intercept=math.nan)), "intercept", id="intercept-nan"
    ),
    pytest.param(
        "regressor.json", _json_edit(lambda d: d.update(intercept="55")), "intercept", id="intercept-str"
    ),
    pytest.param("regressor.json", _json_edit(lambda d: d.update(method="lasso")), "method", id="method"),
    pytest.param("regressor.json", _json_edit(lambda d: d.update(alpha=-1)), "alpha", id="alpha<0"),
    pytest.param("regressor.json", _json_edit(lambda d: d.update(info=[])), "info", id="info-list"),
    pytest.param("regressor.json", _bytes(lambda b: b"[]"), "not a reiqa regressor", id="reg-list"),
    pytest.param("regressor.json", _bytes(lambda b: b[:100]), "cannot read", id="reg-json-torn"),
    pytest.param("regressor.json", Path.unlink, "missing", id="reg-json-missing"),
    # regressor.safetensors
    pytest.param("regressor.safetensors", _tensors(_set_first("coef", math.nan)), "coef", id="coef-nan"),
    pytest.param("regressor.safetensors", _tensors(_set_first("mean", math.inf)), "mean", id="mean-inf"),
    pytest.param(
        "regressor.safetensors", _tensors(_set_first("scale", 0.0)), "scale must be > 0", id="scale=0"
    ),
    pytest.param(
        "regressor.safetensors", _tensors(lambda a: a.pop("mean")), "'mean' is missing", id="no-mean"
    ),
    pytest.param(
        "regressor.safetensors",
        _tensors(_shorter),
        "fitted on 7615 features, these encoders give 7616",
        id="width",
    ),
    pytest.param("regressor.safetensors", _bytes(lambda b: b[: len(b) // 2]), "unreadable", id="reg-torn"),
    pytest.param("regressor.safetensors", _bytes(lambda b: b""), "unreadable", id="reg-empty"),
    pytest.param("regressor.safetensors", Path.unlink, "missing", id="reg-missing"),
    # the encoders
    pytest.param("quality.safetensors", _bytes(lambda b: b[: len(b) // 2]), "unreadable", id="quality-torn"),
    pytest.param("quality.safetensors", _bytes(lambda b: b""), "unreadable", id="quality-empty"),
    pytest.param("quality.safetensors", Path.unlink, "missing encoder weights", id="quality-missing"),
    pytest.param(
        "quality.safetensors",
        _tensors(_set_first("stem.conv.weight", math.nan)),
        "'stem.conv.weight' contains NaN",
        id="quality-nan",
    ),
    pytest.param(
        "quality.safetensors",
        _tensors(lambda a: a.update({"fc.weight": np.zeros(1, np.float16)})),
        "1 unexpected",
        id="extra-tensor",
    ),
    pytest.param(
        "quality.safetensors",
        _tensors(lambda a: a.update({"stem.conv.weight": np.zeros((8, 3, 7, 7), np.float16)})),
        "'stem.conv.weight': file \\(8, 3, 7, 7\\)",
        id="quality-shape",
    ),
    pytest.param(
        "quality.safetensors",
        _tensors(lambda a: a.update({"stem.bn.weight": np.ones(32, np.int64)})),
        "'stem.bn.weight' is torch.int64",
        id="quality-int",
    ),
    pytest.param(
        "content.safetensors", _tensors(lambda a: a.pop("stem.conv.weight")), "1 missing", id="content-key"
    ),
    pytest.param(
        "content.safetensors",
        _tensors(_set_first("stem.conv.weight", -math.inf)),
        "NaN or infinity",
        id="content-inf",
    ),
]


@pytest.mark.parametrize(("name", "corrupt", "field"), BROKEN)
def test_a_broken_bundle_is_a_model_error_naming_the_file_and_field(
    default_dir, tmp_path, name, corrupt, field
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for source in default_dir.iterdir():
        # the big weights are linked unless this case rewrites them (the shipped files stay intact)
        if source.suffix == ".safetensors" and source.name != name and source.stat().st_size > 2**20:
            (folder / source.name).symlink_to(source)
        else:
            (folder / source.name).write_bytes(source.read_bytes())
    corrupt(folder / name)
    with pytest.raises(ModelError, match=field) as caught:
        reiqa.load(folder)
    assert str(caught.value).startswith(f"{folder / name}: ")


def test_a_regressor_with_nan_coefficients_is_not_saved(tmp_path) -> None:
    rng = np.random.default_rng(0)
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(12, 4)), rng.uniform(0, 100, 12))
    regressor.intercept_ = math.nan
    from reiqa.errors import RegressorError

    with pytest.raises(RegressorError, match="NaN or infinity"):
        regressor.save(tmp_path / "reg")
    assert not (tmp_path / "reg" / "regressor.json").exists()
