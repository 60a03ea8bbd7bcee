"""Encoders on ONNX Runtime and OpenVINO: the exported graphs keep batch and image size dynamic
(odd sizes included: EfficientNet-Lite's SAME padding depends on them), and the scores equal
torch's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reiqa.engines import ENGINES, EngineError
from reiqa.inference import ScoreSpec, assemble, load
from reiqa.inference.onnx import cache_dir, export_onnx, exported_graphs
from reiqa.io import save_image
from reiqa.models.backbones import build_backbone
from reiqa.regress import QualityRegressor
from tests.conftest import randomize_batchnorm, textured_images

pytest.importorskip("onnxscript", reason="ONNX export needs onnx and onnxscript: pip install 'reiqa[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="pip install 'reiqa[onnx]'")

SIZES = [(64, 64), (37, 53), (96, 71), (250, 333)]  # (H, W), odd ones included


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-encoder model (random ResNet-18 quality, random EfficientNet-Lite0 content)."""
    torch.manual_seed(0)
    quality, content = build_backbone("resnet18"), build_backbone("efficientnet_lite0")
    randomize_batchnorm(quality, content)  # so that the graphs' BN folding is exercised
    rng = np.random.default_rng(0)
    width = 2 * (512 + 1280)
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(16, width)), rng.uniform(0, 100, 16))
    model = assemble(
        quality,
        content,
        regressor,
        quality_arch="resnet18",
        content_arch="efficientnet_lite0",
        content_norm="tf-lite",
        name="two encoders",
        score=ScoreSpec(range=(0, 100)),
    )
    return model.save(tmp_path_factory.mktemp("model") / "two")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, model_dir: Path):
    """REIQA_CACHE for the module, with the model's graphs exported into it once."""
    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("REIQA_CACHE")
    os.environ["REIQA_CACHE"] = str(folder)
    try:
        exported_graphs(load(model_dir).features)
        yield folder
    finally:
        if old is None:
            del os.environ["REIQA_CACHE"]
        else:
            os.environ["REIQA_CACHE"] = old


@pytest.fixture(scope="module")
def images() -> list[torch.Tensor]:
    return [textured_images(1, h, w, seed=i)[0] for i, (h, w) in enumerate(SIZES)]


def test_graphs_are_cached_by_weights_and_described(cache: Path, model_dir: Path) -> None:
    assert cache_dir() == cache
    model = load(model_dir)
    folder = cache / "onnx" / model.features.model_id(max_side=None, min_side=None)
    assert sorted(p.name for p in folder.iterdir()) == ["content.onnx", "onnx.json", "quality.onnx"]
    info = json.loads((folder / "onnx.json").read_text())
    assert info["encoders"]["quality"]["width"] == 512 and info["encoders"]["content"]["width"] == 1280
    assert info["encoders"]["content"]["input_norm"] == "tf-lite"
    session = ort.InferenceSession(str(folder / "content.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and [isinstance(d, str) for d in inp.shape] == [True, False, True, True]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backend_features_and_scores_equal_torch(cache, model_dir: Path, images, backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino", reason="pip install 'reiqa[openvino]'")
    torch_model = load(model_dir)
    other = load(model_dir, backend=backend)
    assert other.backend == backend and torch_model.backend == "torch"
    assert other.model_id == torch_model.model_id  # the weights it came from
    for image in images:
        expected = torch_model.features(image[None])
        got = other.features(image[None])
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
    batch = textured_images(3, 40, 56, seed=9)  # a batch of 3: the batch size is dynamic too
    torch.testing.assert_close(other.features(batch), torch_model.features(batch), atol=1e-3, rtol=1e-3)
    names = [f"image {i}" for i in range(len(images))]
    got = other.score_batch(names, [other.prepare(im) for im in images])
    expected = torch_model.score_batch(names, [torch_model.prepare(im) for im in images])
    np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], atol=1e-3)


def test_backend_errors(cache, model_dir: Path, tmp_path: Path) -> None:
    model = load(model_dir)
    with pytest.raises(EngineError, match="unknown backend 'tensorrt'"):
        model.with_backend("tensorrt")
    other = model.with_backend("onnxruntime")
    with pytest.raises(ValueError, match="runs on the CPU"):
        other.to("cuda")
    with pytest.raises(ValueError, match="no torch weights"):
        other.save(tmp_path / "copy")
    with pytest.raises(EngineError, match="already run on another backend"):
        export_onnx(other.features, tmp_path / "g")
    with pytest.raises(EngineError, match="not found"):
        model.with_backend("onnxruntime", onnx_dir=tmp_path / "nothing")
    stale = tmp_path / "stale"
    stale.mkdir()
    source = next((cache / "onnx").iterdir())
    for f in source.iterdir():
        (stale / f.name).write_bytes(f.read_bytes())
    info = json.loads((stale / "onnx.json").read_text())
    (stale / "onnx.json").write_text(json.dumps({**info, "weights_id": "0" * 16}))
    with pytest.raises(EngineError, match="graphs of other weights"):
        model.with_backend("onnxruntime", onnx_dir=stale)
    assert isinstance(model.with_backend("onnxruntime", onnx_dir=source).score(torch.rand(3, 32, 32)), float)


def test_cli_export_and_score_with_a_backend(cache, model_dir: Path, tmp_path: Path) -> None:
    for i, image in enumerate(textured_images(3, 48, 64, seed=11)):
        save_image(image, tmp_path / f"{i}.png")
    env = {**os.environ, "REIQA_CACHE": str(cache)}
    cli = [sys.executable, "-m", "reiqa"]
    out = tmp_path / "graphs"
    done = subprocess.run(
        [*cli, "export", str(model_dir), "--out", str(out)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert (out / "quality.onnx").is_file() and (out / "content.onnx").is_file()
    again = subprocess.run(
        [*cli, "export", str(model_dir), "--out", str(out)], capture_output=True, text=True, env=env
    )
    assert again.returncode == 1 and "--overwrite" in again.stderr
    scores = {}
    for backend in ("torch", "onnxruntime"):
        csv = tmp_path / f"{backend}.csv"
        run = subprocess.run(
            [*cli, "score", str(tmp_path), "--model", str(model_dir), "--backend", backend, "-o", str(csv)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert run.returncode == 0, run.stderr
        assert "exporting" not in run.stderr  # the module's graphs were found in the cache
        rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
        scores[backend] = {Path(r[0]).name: float(r[1]) for r in rows}
    assert scores["torch"].keys() == scores["onnxruntime"].keys() and len(scores["torch"]) == 3
    for name, value in scores["torch"].items():
        assert scores["onnxruntime"][name] == pytest.approx(value, abs=1e-3)
    # an output started on one engine may be resumed on another (same model id; equal to 1e-3)
    (tmp_path / "extra.png").write_bytes((tmp_path / "0.png").read_bytes())
    resumed = subprocess.run(
        [
            *cli,
            "score",
            str(tmp_path),
            "--model",
            str(model_dir),
            "--backend",
            "onnxruntime",
            "-o",
            str(tmp_path / "torch.csv"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = [line.split(",") for line in (tmp_path / "torch.csv").read_text().splitlines()[1:]]
    assert len(rows) == 4 and float(rows[-1][1]) == pytest.approx(scores["torch"]["0.png"], abs=1e-3)


def test_bfloat16_openvino_is_close_but_never_mixed_with_float32(
    cache, model_dir: Path, images, tmp_path
) -> None:
    pytest.importorskip("openvino", reason="pip install 'reiqa[openvino]'")
    from reiqa.errors import ReiqaError
    from reiqa.jobs import score_inputs

    torch_model = load(model_dir)
    bf16 = load(model_dir, backend="openvino-bf16")
    assert bf16.backend == "openvino-bf16" and bf16.features.engine.precision == "bf16"
    # other numbers, so another id: caches and outputs never mix them with float32 ones
    assert bf16.model_id not in {torch_model.model_id, load(model_dir, backend="openvino").model_id}
    for image in images:
        expected = torch_model.features(image[None])
        torch.testing.assert_close(bf16.features(image[None]), expected, atol=0.05, rtol=0.05)
    for i, image in enumerate(images[:2]):
        save_image(image, tmp_path / f"{i}.png")
    out = tmp_path / "scores.csv"
    score_inputs([tmp_path], out, model=model_dir, device="cpu", backend="torch")
    with pytest.raises(ReiqaError, match=str(out)):
        score_inputs([tmp_path], out, model=model_dir, device="cpu", backend="openvino-bf16")


def test_engines_set_their_pixel_budget_per_forward(cache, model_dir: Path) -> None:
    from reiqa.features import encode

    model = load(model_dir)
    torch_budget = ENGINES["torch"].pixels_per_forward
    assert model.features.engine.pixels_per_forward == torch_budget
    batches = []
    model.features.register_forward_pre_hook(lambda _, args: batches.append(len(args[0])))
    # two 32x40 images per forward pass
    assert encode(model.features, torch.rand(5, 3, 32, 40), max_pixels_per_forward=2 * 32 * 40).shape[0] == 5
    assert batches == [2, 2, 1]
    assert load(model_dir, backend="onnxruntime").features.engine.pixels_per_forward == torch_budget
    if importlib.util.find_spec("openvino"):
        expected = ENGINES["openvino"].pixels_per_forward
        assert (
            load(model_dir, backend="openvino").features.engine.pixels_per_forward == expected < torch_budget
        )


def test_a_cpu_engine_on_a_machine_with_a_gpu(cache, model_dir: Path, monkeypatch) -> None:
    """device 'auto' (the CLI's default) on a machine with a GPU runs a CPU engine on the CPU;
    naming the GPU with a CPU engine is an error that says what to do."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    model = load(model_dir, backend="onnxruntime", device="auto")
    assert model.backend == "onnxruntime" and model.device.type == "cpu"
    with pytest.raises(EngineError, match=r"runs on the CPU, not on cuda.*backend='torch'"):
        load(model_dir, backend="onnxruntime", device="cuda")
