"""The engine table: every fact about an engine in one record, ``choose`` resolving 'auto', and the
command line's help built from the table without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reiqa.engines import AUTO_MIN_IMAGES, ENGINES, EngineError, choose, get, help_text


def test_auto_picks_openvino_for_large_cpu_jobs_only() -> None:
    assert choose("torch", device_type="cpu", images=10_000).name == "torch"
    assert choose("auto", device_type="cpu", images=AUTO_MIN_IMAGES - 1).name == "torch"
    assert choose("auto", device_type="cuda", images=10_000).name == "torch"
    expected = "openvino" if ENGINES["openvino"].installed() else "torch"
    assert choose("auto", device_type="cpu", images=AUTO_MIN_IMAGES).name == expected
    assert choose("auto", device_type="cpu", images=None).name == expected  # a service


def test_auto_never_picks_an_engine_the_table_marks_opt_in(monkeypatch) -> None:
    from reiqa import engines

    monkeypatch.setattr(engines.Engine, "installed", lambda self: True)
    picked = choose("auto", device_type="cpu", images=None)
    assert picked.auto and picked.precision == "fp32"
    assert not ENGINES["openvino-bf16"].auto and not ENGINES["onnxruntime"].auto
    assert not ENGINES["torch-fp16"].auto and not ENGINES["openvino-int8"].auto


def test_unknown_and_missing_engines_say_what_to_do(monkeypatch) -> None:
    with pytest.raises(
        EngineError, match="unknown backend 'tensorrt'; one of auto, torch, torch-fp16, onnxruntime"
    ):
        get("tensorrt")
    with pytest.raises(EngineError, match="unknown backend"):
        choose("tensorrt")
    real_import = __import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", no_openvino)
    with pytest.raises(EngineError, match=r"pip install 'reiqa\[openvino\]'"):
        choose("openvino-bf16")


def test_every_engine_record_is_complete() -> None:
    for name, engine in ENGINES.items():
        assert engine.name == name
        assert engine.pixels_per_forward >= 2**16
        assert engine.precision in ("fp32", "bf16", "fp16", "int8")
        assert (engine.start is None) == (engine.module is None) == name.startswith("torch")
        assert engine.cpu_only == (not name.startswith("torch"))
        assert engine.quantized == (engine.precision == "int8")
        assert not engine.auto or engine.precision == "fp32"  # auto picks int8 only per model
    text = help_text()
    assert all(name in text for name in ENGINES) and str(AUTO_MIN_IMAGES) in text


def test_extras_named_by_the_table_exist_in_pyproject() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    for engine in ENGINES.values():
        if engine.extra is not None:
            assert engine.extra in extras, engine.name
            assert any(engine.module in dep or dep.startswith("reiqa[") for dep in extras[engine.extra])


def test_the_engine_table_imports_no_torch() -> None:
    code = "import sys, reiqa.engines; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_float16_torch_is_for_cuda_only_and_never_mixed_with_float32(tmp_path) -> None:
    import copy

    from reiqa.inference import load
    from reiqa.inference.onnx import on_engine
    from tests.conftest import save_tiny_bundle

    folder = save_tiny_bundle(tmp_path / "model")
    with pytest.raises(EngineError, match="'torch-fp16' runs on CUDA; the model is on cpu"):
        load(folder, backend="torch-fp16")
    model = load(folder)
    with pytest.raises(EngineError, match="runs on CUDA"):
        on_engine(model.features, ENGINES["torch-fp16"])
    half = copy.copy(model.features)  # what on_engine makes of a CUDA model: the same modules
    half.engine = ENGINES["torch-fp16"]
    assert half.model_id(max_side=None, min_side=None) != model.features.model_id(
        max_side=None, min_side=None
    )
