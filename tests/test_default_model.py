"""The embedded default model: it ships in the package, loads offline, and scores repeatably."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

import reiqa
from reiqa import distortions
from reiqa.cli import app
from reiqa.io import load_image, save_image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def model():
    return reiqa.load()


@pytest.fixture(scope="module")
def sample():
    # a 160 x 200 crop of a shipped sample photo keeps the test fast
    return load_image(SAMPLES / "kodim23.png")[:, 100:260, 150:350].contiguous()


def test_ships_in_the_package_as_float16_safetensors_of_tens_of_mb(model) -> None:
    folder = resources.files("reiqa") / "weights" / "default"
    total = 0
    for name in ("quality.safetensors", "content.safetensors"):
        with resources.as_file(folder / name) as path, safe_open(str(path), "pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys() if "num_batches" not in k}  # noqa: SIM118
            total += path.stat().st_size
        assert dtypes == {torch.float16}
    assert total < 40 * 2**20
    assert folder.joinpath("README.md").is_file()
    assert "Apache License" in folder.joinpath("LICENSE-content-encoder.txt").read_text(encoding="utf-8")
    assert model.higher_is_better and model.score_range is not None
    assert model.card.content.arch == "efficientnet_lite0"
    assert model.card.content.input_norm == "tf-lite"


def test_the_same_image_gets_the_same_score_every_time(model, sample) -> None:
    first = model.score(sample)
    assert isinstance(first, float) and np.isfinite(first)
    assert model.score(sample) == first
    batch = model.score(torch.stack([sample, sample.flip(-1), sample]))
    assert batch[0] == pytest.approx(first, abs=1e-4) and batch[2] == pytest.approx(first, abs=1e-4)
    assert reiqa.load().score(sample) == pytest.approx(first, abs=1e-6)  # a fresh load, same number


def test_api_path_list_and_cli_agree(model, sample, tmp_path) -> None:
    path = save_image(sample, tmp_path / "crop.png")
    from_tensor = model.score(load_image(path))
    assert model.score(path) == pytest.approx(from_tensor, abs=1e-6)
    assert model.score([path, tmp_path / "missing.png"])[0] == pytest.approx(from_tensor, abs=1e-6)
    result = CliRunner().invoke(app, ["score", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{from_tensor:.3f}" in result.output


def test_heavy_blur_and_downscaling_lower_the_score(model, sample) -> None:
    g = torch.Generator().manual_seed(0)
    x = sample.unsqueeze(0)
    pristine = model.score(x)[0]
    for kind in ("lens_blur", "gaussian_blur", "resize_bicubic", "motion_blur"):
        assert model.score(distortions.apply(x, kind, 4, generator=g))[0] < pristine - 10, kind


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_agree(sample) -> None:
    x = torch.stack([sample, sample.flip(-1)])
    cpu = reiqa.load().score(x)
    cuda = reiqa.load().to("cuda").score(x)
    np.testing.assert_allclose(cuda, cpu, atol=1e-3, rtol=0)


def test_large_images_are_downscaled_to_the_models_cap_unless_asked(sample, tmp_path) -> None:
    from reiqa.resize import cap_size

    model = reiqa.load()
    assert model.max_side == 1024
    wide = torch.nn.functional.interpolate(sample[None], size=(96, 1300), mode="bilinear")[0].clamp(0, 1)
    capped = cap_size(wide, max_side=1024)
    assert capped.shape[-1] == 1024
    assert model.score(wide) == pytest.approx(model.score(capped), abs=1e-4)
    path = save_image(wide, tmp_path / "wide.png")
    decoded = load_image(path)  # 8-bit
    assert model.score(path) == pytest.approx(model.score(cap_size(decoded, max_side=1024)), abs=1e-4)
    full = CliRunner().invoke(app, ["score", str(path), "--max-side", "0"])
    assert full.exit_code == 0, full.output
    uncapped = model.with_options(max_side=None)
    assert f"{uncapped.score(path):.3f}" in full.output
    assert abs(uncapped.score(path) - model.score(cap_size(decoded, max_side=1024))) > 1e-3
    with pytest.raises(ValueError, match="max_side"):
        model.with_options(max_side=0)


def test_shipped_files_record_no_machine_paths() -> None:
    """Provenance is file names, hashes and repository-relative paths, never a folder of the
    machine that built the model."""
    from importlib import resources

    root = resources.files("reiqa") / "weights" / "default"
    for name in ("model.json", "regressor.json", "README.md"):
        text = root.joinpath(name).read_text(encoding="utf-8")
        for marker in ("/work/", "/home/", "/root/", "/tmp/", "../", "C:\\"):
            assert marker not in text, (name, marker)


def test_noise_lowers_the_score_of_every_sample(model) -> None:
    """Noise raised the score of the first default model (a regressor fitted on opinion scores
    alone read it as detail); the ranking pairs it is fitted with now teach it otherwise."""
    from reiqa.inputs import find_images

    for path in find_images([SAMPLES]):
        x = load_image(path).unsqueeze(0)
        g = torch.Generator().manual_seed(0)
        pristine = model.score(x)[0]
        for kind in ("white_noise", "impulse_noise", "color_noise", "multiplicative_noise"):
            assert model.score(distortions.apply(x, kind, 4, generator=g))[0] < pristine, (path.name, kind)


def test_the_default_model_names_a_strong_blur_and_strong_noise(model) -> None:
    from reiqa.distortions.issues import ISSUES

    head = model.diagnosis
    assert head is not None and head.classes == ISSUES and head.blocks == ("quality_full", "quality_half")
    photo = load_image(SAMPLES / "kodim05.png")[:, :256, :384].contiguous()
    generator = torch.Generator().manual_seed(0)
    blurred = distortions.apply(photo[None], "lens_blur", 4, generator=generator)[0]
    noisy = distortions.apply(photo[None], "white_noise", 4, generator=generator)[0]
    clean, blur, noise = model.diagnose(torch.stack([photo, blurred, noisy]))
    assert (blur.issue, noise.issue) == ("blur", "noise")
    assert blur.severity > clean.severity and noise.severity > clean.severity
    assert clean.score == pytest.approx(model.score(photo), abs=1e-4)
