"""A model's encoders as ONNX graphs, and a feature model whose encoders those graphs run on
another engine (``reiqa.engines``: ONNX Runtime, OpenVINO).

``export_onnx`` writes each encoder's backbone as a graph: input ``images`` (N, 3, H, W) float32,
already normalised as the encoder expects (``onnx.json`` gives each one's mean and std), any N,
H and W; output ``features`` (N, D), the pooled features. The normalisation, the half scale, the
size cap and the regressor stay in reiqa (torch), so one graph serves both scales and every
image size.

``on_engine`` builds a ``FeatureModel`` whose encoders are sessions of the chosen engine, the
graphs exported once into a cache folder (``cache_dir``) keyed by the model's weights.
Everything else (preparing, batching, the half scale, the regressor) is unchanged, so scores
differ from torch's only by the engines' arithmetic; ``benchmarks/score.py`` measures by how much.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reiqa.atomic import atomic_path, write_text_atomic
from reiqa.engines import Engine, EngineError, Runner, cache_dir
from reiqa.features import FeatureModel, output_dim
from reiqa.inference.int8 import read_int8

__all__ = ["OPSET", "EngineEncoder", "cache_dir", "export_onnx", "exported_graphs", "on_engine"]

log = logging.getLogger(__name__)

OPSET = 18


class _Flat(nn.Module):
    """The graph that is exported: the backbone, its pooled features flattened to (N, D)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x).flatten(1)


class EngineEncoder(nn.Module):
    """A backbone run by another engine: (N, 3, H, W) normalised float -> (N, D) float32 on the
    input's device. Its pooling is part of the exported graph."""

    pooled_in_graph = True

    def __init__(self, run: Runner, feature_dim: int, engine: str) -> None:
        super().__init__()
        self._run, self.feature_dim, self.engine = run, feature_dim, engine

    def forward(self, x: Tensor) -> Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(np.asarray(self._run(array), dtype=np.float32)).to(x.device)

    def extra_repr(self) -> str:
        return f"engine={self.engine}, feature_dim={self.feature_dim}"


def _export_one(encoder: nn.Module, target: Path) -> None:
    """``encoder`` as an ONNX graph at ``target`` (opset 18, dynamic batch and image size)."""
    module = _Flat(encoder).to("cpu", torch.float32).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    height = torch.export.Dim("height", min=16, max=16384)
    width = torch.export.Dim("width", min=16, max=16384)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (torch.rand(2, 3, 96, 128),),
            dynamo=True,
            input_names=["images"],
            output_names=["features"],
            dynamic_shapes={"x": {0: batch, 2: height, 3: width}},
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    with atomic_path(target) as tmp:
        program.save(str(tmp), external_data=False)


def export_onnx(features: FeatureModel, folder: str | Path) -> dict[str, Path]:
    """Write ``quality.onnx`` and/or ``content.onnx`` and ``onnx.json`` (each encoder's width and
    input normalisation, the weights' id) into ``folder``; each file appears whole. Returns
    {role: path}."""
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise EngineError("exporting to ONNX needs onnx and onnxscript: pip install 'reiqa[onnx]'") from exc
    if features.engine.start is not None:
        raise EngineError("these encoders already run on another backend; export from a torch model")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    described = {}
    for role, (norm, encoder) in features.encoders().items():
        written[role] = folder / f"{role}.onnx"
        _export_one(encoder, written[role])
        described[role] = {
            "width": output_dim(encoder),
            "input_norm": norm.kind,
            "mean": norm.mean.flatten().tolist(),
            "std": norm.std.flatten().tolist(),
        }
    info = {
        "format": "reiqa-onnx-1",
        "opset": OPSET,
        "input": "images: (N, 3, H, W) float32, RGB in [0, 1] then (x - mean) / std per channel",
        "output": "features: (N, D) float32",
        "encoders": described,
        "weights_id": features.model_id(max_side=None, min_side=None),
    }
    write_text_atomic(folder / "onnx.json", json.dumps(info, indent=2) + "\n")
    return written


def _graphs_in(folder: Path, roles: list[str], weights_id: str) -> dict[str, Path]:
    """The graphs ``reiqa export`` wrote into ``folder``, checked to be of these weights."""
    paths = {r: folder / f"{r}.onnx" for r in roles}
    missing = [str(p) for p in [*paths.values(), folder / "onnx.json"] if not p.is_file()]
    if missing:
        raise EngineError(f"{', '.join(missing)}: not found (write them with reiqa export)")
    try:
        found = json.loads((folder / "onnx.json").read_text()).get("weights_id")
    except (ValueError, AttributeError) as exc:
        raise EngineError(f"{folder / 'onnx.json'}: unreadable ({exc})") from exc
    if found != weights_id:
        raise EngineError(
            f"{folder}: graphs of other weights (id {found}, this model's is {weights_id}); export "
            "them again with reiqa export"
        )
    return paths


def exported_graphs(features: FeatureModel, *, folder: Path | None = None) -> dict[str, Path]:
    """The ONNX graphs of ``features``' encoders: from ``folder`` if given, else from the cache
    (exported there once; about a minute on a 2-core CPU)."""
    roles = list(features.encoders())
    weights_id = features.model_id(max_side=None, min_side=None)
    if folder is not None:
        return _graphs_in(Path(folder), roles, weights_id)
    target = cache_dir() / "onnx" / weights_id
    paths = {r: target / f"{r}.onnx" for r in roles}
    if not all(p.is_file() for p in paths.values()):
        # a warning, so that Python's default logging shows it: the export takes about a minute
        log.warning("reiqa: exporting the encoders to ONNX once, into %s", target)
        export_onnx(features, target)
    return paths


def on_engine(features: FeatureModel, engine: Engine, *, folder: Path | None = None) -> FeatureModel:
    """``features`` with its encoders run by ``engine``: for torch's engines the same modules
    (torch-fp16: on CUDA only), else a new FeatureModel on the CPU; the same model id, with the
    engine's precision in it. The graphs come from :func:`exported_graphs`, or for an int8 engine
    from ``reiqa.inference.int8.read_int8`` (``folder``: an int8 set's folder), whose precision
    names the set."""
    engine.require()
    if engine.start is None:  # torch itself: the same modules, maybe another arithmetic
        if engine.precision == "fp16" and features.device.type != "cuda":
            raise EngineError(f"backend {engine.name!r} runs on CUDA; the model is on {features.device}")
        if engine is features.engine:
            return features
        swapped = copy.copy(features)  # shares the encoders
        swapped.engine = engine
        return swapped
    if features.device.type != "cpu":
        raise EngineError(f"backend {engine.name!r} runs on the CPU; the model is on {features.device}")
    if engine.quantized:
        int8 = read_int8(features, folder)
        paths, engine = int8.graphs, replace(engine, precision=int8.precision)
    else:
        paths = exported_graphs(features, folder=folder)
    threads = torch.get_num_threads()
    swapped = {}
    for role, (_, encoder) in features.encoders().items():
        try:
            run = engine.start(paths[role], threads)
        except Exception as exc:  # the engines raise their own error types
            raise EngineError(f"{paths[role]}: {engine.name} could not load it: {exc}") from exc
        swapped[role] = EngineEncoder(run, output_dim(encoder), engine.name)
    return FeatureModel(
        swapped.get("quality"),
        swapped.get("content"),
        compat=features.compat,
        quality_norm=features.quality_norm.kind,
        content_norm=features.content_norm.kind,
        pooling=features.pooling,
        engine=engine,
        weights_hash=features.weights_hash(),  # same model id as the torch encoders
    )
