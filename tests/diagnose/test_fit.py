"""Fitting a head for a model: the renderings, their labels, and ``reiqa fit-diagnosis``'s folder."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import reiqa
from reiqa.diagnose.fit import TrainingSet, render, training_set
from reiqa.distortions import CATALOG, NUM_LEVELS
from reiqa.distortions.issues import ISSUES
from reiqa.errors import ModelError, OutputError
from tests.conftest import textured_images
from tests.diagnose.conftest import run_cli


def test_render_gives_every_type_and_level_then_pristine_crops() -> None:
    image = textured_images(1, 40, 70, seed=1)[0]
    crops, types, levels = render(image, crop=32, pristine=3, generator=torch.Generator().manual_seed(0))
    n = len(CATALOG) * NUM_LEVELS
    assert crops.shape == (n + 3, 3, 32, 32) and crops.dtype == torch.float32
    assert sorted(zip(types[:n].tolist(), levels[:n].tolist(), strict=True)) == [
        (t, lv) for t in range(1, len(CATALOG) + 1) for lv in range(NUM_LEVELS)
    ]
    assert types[n:].tolist() == [0, 0, 0] and levels[n:].tolist() == [-1, -1, -1]
    windows = image.unfold(1, 32, 1).unfold(2, 32, 1)  # (3, 9, 39, 32, 32): every 32 px crop
    for crop in crops[n:]:  # the pristine crops are the photo's pixels, untouched
        assert (windows - crop[:, None, None]).abs().amax(dim=(0, 3, 4)).min() == 0
    again, *_ = render(image, crop=32, pristine=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)
    small, *_ = render(image, crop=64, pristine=0, generator=torch.Generator().manual_seed(0))
    assert small.shape[-2:] == (40, 40)  # the shorter side when the crop does not fit


def test_labels_features_and_a_photo_renders_the_same_in_any_subset(plain_model, training_photos) -> None:
    model = reiqa.load(plain_model)
    paths = sorted(training_photos.iterdir())
    full = training_set(model, paths, crop=32, pristine=2, seed=3)
    part = training_set(model, paths[1:2], crop=32, pristine=2, seed=3)
    assert full.features.shape == (3 * 132, 1024) and [b for b, _ in full.blocks] == [
        "quality_full",
        "quality_half",
    ]
    assert np.array_equal(full.features[full.photo == 1], part.features)  # seeded by the file's name
    identity = (full.type_id == CATALOG[15].id) & (full.level == 2)  # mean shift by 0
    assert set(full.issue[identity]) == {ISSUES.index("none")} and set(full.severity[identity]) == {0.0}
    assert set(full.issue[full.type_id == 0]) == {0} and set(full.issue[full.type_id == 7]) == {3}
    with pytest.raises(ModelError, match="content_full"):
        training_set(model, paths, blocks=("content_full",))


def test_training_sets_round_trip_and_skip_unreadable_photos(plain_model, training_photos, tmp_path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    paths = [*sorted(training_photos.iterdir())[:1], bad]
    train = training_set(reiqa.load(plain_model), paths, crop=32, pristine=1)
    assert train.paths == [str(paths[0])] and len(train.failures) == 1 and "bad.png" in train.failures[0]
    back = TrainingSet.load(train.save(tmp_path / "set.safetensors"))
    assert np.array_equal(back.features, train.features) and back.layout == train.layout
    assert (back.crop, back.pristine, back.failures) == (32, 1, train.failures)


def test_fit_diagnosis_writes_a_model_folder_with_the_head(head_model, plain_model) -> None:
    for name in ("model.json", "quality.safetensors", "regressor.json", "regressor.safetensors"):
        assert filecmp.cmp(head_model / name, plain_model / name, shallow=False)  # copied byte for byte
    model = reiqa.load(head_model)
    assert model.diagnosis is not None and model.diagnosis.classes == ISSUES
    assert model.diagnosis.fit.photos == 3 and model.diagnosis.crop == 32
    assert reiqa.load(plain_model).diagnosis is None


def test_the_cli_fit_is_repeatable_and_refuses_to_replace(
    plain_model, training_photos, tmp_path, capsys, monkeypatch
) -> None:
    args = ["fit-diagnosis", training_photos, "--model", plain_model, "--crop", "32", "--pristine", "0"]
    args += ["--max-photos", "2"]
    code, out, err = run_cli([*args, "-o", tmp_path / "a", "--device", "cpu"], capsys, monkeypatch)
    assert code == 0, err
    assert "fitted on 2 photos (260 renderings)" in out and "balanced accuracy" in out
    assert run_cli([*args, "-o", tmp_path / "b", "--device", "cpu"], capsys, monkeypatch)[0] == 0
    assert filecmp.cmp(
        tmp_path / "a" / "diagnosis.safetensors", tmp_path / "b" / "diagnosis.safetensors", shallow=False
    )
    code, _, err = run_cli([*args, "-o", tmp_path / "a", "--device", "cpu"], capsys, monkeypatch)
    assert code == 1 and "already holds" in err and "--overwrite" in err


def test_a_head_can_be_added_to_the_models_own_folder(plain_model, training_photos, tmp_path) -> None:
    from reiqa.diagnose.fit import fit_diagnosis

    folder = Path(shutil.copytree(plain_model, tmp_path / "mine"))
    fit_diagnosis([training_photos], folder, model=folder, crop=32, pristine=0, max_photos=2, device="cpu")
    assert reiqa.load(folder).diagnosis.fit.photos == 2
    with pytest.raises(OutputError, match=r"diagnosis\.json"):
        fit_diagnosis([training_photos], folder, model=folder, crop=32, device="cpu")


def test_sets_rendered_in_parts_join_into_the_set_of_all_and_fit_the_same_head(
    plain_model, training_photos
) -> None:
    from reiqa.diagnose.fit import fit_head

    model = reiqa.load(plain_model)
    paths = sorted(training_photos.iterdir())
    full = training_set(model, paths, crop=32, pristine=2, seed=3)
    parts = [training_set(model, paths[i::2], crop=32, pristine=2, seed=3) for i in (0, 1)]
    joined = TrainingSet.concat(parts)
    assert sorted(joined.paths) == sorted(full.paths) and joined.features.shape == full.features.shape
    for name in full.paths:  # each photo's rows, whatever its place
        mine = joined.features[joined.photo == joined.paths.index(name)]
        assert np.array_equal(mine, full.features[full.photo == full.paths.index(name)])
    settings = {"cs": (0.01, 0.1), "alphas": (10.0,), "none_shifts": (0.0,)}
    a, b = fit_head(full, **settings), fit_head(joined, **settings)
    assert a.fit.validation["photos"] == b.fit.validation["photos"] == 1
    assert a.fit.C == b.fit.C and a.fit.validation["accuracy"] == pytest.approx(b.fit.validation["accuracy"])
    other = training_set(model, paths, crop=32, pristine=1, seed=3)
    with pytest.raises(Exception, match="pristine"):
        TrainingSet.concat([full, other])


def test_the_none_shift_raises_nones_log_odds_alone(plain_model, training_photos) -> None:
    from reiqa.diagnose.fit import fit_head

    train = training_set(reiqa.load(plain_model), sorted(training_photos.iterdir()), crop=32, pristine=2)
    plain = fit_head(train, cs=(0.05,), alphas=(100.0,), none_shifts=(0.0,))
    shifted = fit_head(train, cs=(0.05,), alphas=(100.0,), none_shifts=(1.5,))
    none = plain.classes.index("none")
    assert shifted.fit.none_shift == 1.5 and np.array_equal(plain.coef, shifted.coef)
    difference = shifted.intercept - plain.intercept
    assert difference[none] == pytest.approx(1.5) and np.delete(difference, none) == pytest.approx(0.0)
    p0, _ = plain.predict(train.features, layout=train.blocks)
    p1, _ = shifted.predict(train.features, layout=train.blocks)
    odds = lambda p: p[:, none] / np.delete(p, none, axis=1).sum(1)  # noqa: E731
    assert np.all(odds(p1) > odds(p0)) and np.allclose(odds(p1) / odds(p0), np.exp(1.5))
    chosen = fit_head(train, cs=(0.05,), alphas=(100.0,), none_shifts=(0.0, 1.0, 3.0))
    by_shift = chosen.fit.validation["balanced_accuracy_by_none_shift"]
    assert chosen.fit.none_shift == max(map(float, by_shift), key=lambda s: (by_shift[f"{s:g}"], -s))
