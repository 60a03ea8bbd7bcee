"""A tiny model with a diagnosis head fitted by ``reiqa fit-diagnosis`` itself, one without, and
photos (good ones of two shapes and broken files) for the diagnose tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reiqa.io import save_image
from tests.conftest import run_cli, save_tiny_bundle, textured_images  # noqa: F401 (run_cli: for the tests here)


@pytest.fixture(scope="session")
def training_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("training")
    for i, image in enumerate(textured_images(3, 72, 88, seed=11)):
        save_image(image, folder / f"train{i}.png")
    return folder


@pytest.fixture(scope="session")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder without a diagnosis head."""
    return save_tiny_bundle(tmp_path_factory.mktemp("plain") / "model")


@pytest.fixture(scope="session")
def head_model(tmp_path_factory: pytest.TempPathFactory, plain_model: Path, training_photos: Path) -> Path:
    """``plain_model`` with a head fitted on renderings of three small photos (32 px crops)."""
    from reiqa.diagnose.fit import fit_diagnosis

    out = tmp_path_factory.mktemp("with-head") / "model"
    fit_diagnosis([training_photos], out, model=plain_model, crop=32, pristine=2, device="cpu")
    return out


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two good photos (landscape PNG, portrait JPEG) and two broken files."""
    folder = tmp_path_factory.mktemp("photos")
    wide, tall = textured_images(2, 96, 128, seed=5)
    out = {
        "wide.png": save_image(wide, folder / "wide.png"),
        "tall.jpg": save_image(tall.transpose(1, 2)[:, :, :80], folder / "tall.jpg"),
    }
    (folder / "notes.jpg").write_text("not an image")
    out["notes.jpg"] = folder / "notes.jpg"
    data = out["tall.jpg"].read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    out["cut.jpg"] = folder / "cut.jpg"
    return out
