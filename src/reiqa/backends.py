"""Run a model's encoders on another inference engine: ONNX Runtime or OpenVINO.

``export_onnx`` writes each encoder's backbone as an ONNX graph: input ``images`` (N, 3, H, W)
float32, already normalised as the encoder expects (``onnx.json`` gives each one's mean and
std), any N, H and W; output ``features`` (N, D), the pooled features. The normalisation, the
half scale, the size cap and the regressor stay in reiqa (torch), so one graph serves both scales
and every image size.

``use_backend`` swaps a ``FeatureModel``'s encoders for sessions of the chosen engine, exporting
the graphs once into a cache folder (``cache_dir``) keyed by the model's weights. Everything else
(decoding, batching, the half scale, the regressor) is unchanged, so scores differ from torch's
only by the engines' arithmetic; ``benchmarks/score.py`` measures by how much.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reiqa.atomic import fsync_dir
from reiqa.errors import ReiqaError
from reiqa.features import FeatureModel, output_dim
from reiqa.models.backbones import InputNorm

BACKENDS = ("torch", "onnxruntime", "openvino", "openvino-bf16")
#: ``auto`` picks OpenVINO (1.2x torch's images/s on a 2-core CPU, scores equal to 1e-4; see
#: docs/reports/score-backends.json) for CPU jobs of at least this many images, where its longer
#: start (about 1 s, and a one-time export of the graphs) pays off; torch otherwise
AUTO_MIN_IMAGES = 100
#: OpenVINO keeps activation buffers per compiled encoder, sized for the largest batch it has run:
#: one 500x500 photo per forward pass keeps ``reiqa score`` under 1 GB (0.92 against 1.07 GB
#: in-process, 64 photos) for 11 % of its speed; ONNX Runtime lost 24 % that way and keeps the default
ENGINE_PIXELS_PER_FORWARD = {"openvino": 2**18, "openvino-bf16": 2**18}
#: engines whose arithmetic is not float32: their scores get a model id of their own
ENGINE_PRECISION = {"openvino-bf16": "bf16"}
ROLES = ("quality", "content")
OPSET = 18
#: what each engine needs installed (pip extra of reiqa)
_NEEDS = {
    "onnxruntime": ("onnxruntime", "pip install 'reiqa[onnx]'"),
    "openvino": ("openvino", "pip install 'reiqa[openvino]'"),
    "openvino-bf16": ("openvino", "pip install 'reiqa[openvino]'"),
}


class BackendError(ReiqaError):
    """A backend is unknown, not installed, or could not load or export the encoders."""


def cache_dir() -> Path:
    """Where exported graphs are kept: $REIQA_CACHE, else $XDG_CACHE_HOME/reiqa, else ~/.cache/reiqa."""
    if os.environ.get("REIQA_CACHE"):
        return Path(os.environ["REIQA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reiqa"


class _Flat(nn.Module):
    """The graph that is exported: the backbone, its pooled features flattened to (N, D)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x).flatten(1)


def _encoders(features: FeatureModel) -> dict[str, tuple[InputNorm, nn.Module]]:
    pairs = {
        "quality": (features.quality_norm, features.quality),
        "content": (features.content_norm, features.content),
    }
    return {role: (norm, enc) for role, (norm, enc) in pairs.items() if enc is not None}


def export_onnx(features: FeatureModel, folder: str | Path) -> dict[str, Path]:
    """Write ``quality.onnx`` and/or ``content.onnx`` (opset 18, dynamic batch and image size)
    and ``onnx.json`` (each encoder's width and input normalisation, the weights' id) into
    ``folder``; each file appears whole (written beside, then renamed). Returns {role: path}."""
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise BackendError("exporting to ONNX needs onnx and onnxscript: pip install 'reiqa[onnx]'") from exc
    if any(isinstance(enc, EngineEncoder) for _, enc in _encoders(features).values()):
        raise BackendError("these encoders already run on another backend; export from a torch model")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    widths = {}
    for role, (norm, encoder) in _encoders(features).items():
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
        target = folder / f"{role}.onnx"
        fd, tmp = tempfile.mkstemp(prefix=f".{role}.", suffix=".onnx.tmp", dir=folder)
        os.close(fd)
        try:
            program.save(tmp, external_data=False)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written[role] = target
        widths[role] = {
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
        "encoders": widths,
        "weights_id": features.model_id(max_side=None, min_side=None),
    }
    (folder / "onnx.json").write_text(json.dumps(info, indent=2) + "\n")
    fsync_dir(folder)
    return written


class EngineEncoder(nn.Module):
    """A backbone run by another engine: (N, 3, H, W) normalised float -> (N, D) float32 on the
    input's device."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], feature_dim: int, backend: str) -> None:
        super().__init__()
        self._run, self.feature_dim, self.backend = run, feature_dim, backend

    def forward(self, x: Tensor) -> Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(np.asarray(self._run(array), dtype=np.float32)).to(x.device)

    def extra_repr(self) -> str:
        return f"backend={self.backend}, feature_dim={self.feature_dim}"


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def choose_backend(requested: str, *, device: torch.device, images: int | None = None) -> str:
    """The engine for ``requested``: itself, or for 'auto' OpenVINO when the job runs on the CPU,
    has at least ``AUTO_MIN_IMAGES`` images (None: a long-running service) and OpenVINO and the
    ONNX exporter are installed; torch otherwise."""
    if requested != "auto":
        return requested
    if device.type != "cpu" or (images is not None and images < AUTO_MIN_IMAGES):
        return "torch"
    return "openvino" if _installed("openvino") and _installed("onnxscript") else "torch"


def _require(backend: str) -> None:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; one of auto, {', '.join(BACKENDS)}")
    if backend in _NEEDS:
        module, fix = _NEEDS[backend]
        try:
            __import__(module)
        except ImportError as exc:
            raise BackendError(f"backend {backend!r} needs the {module} package: {fix}") from exc


def _onnxruntime_runner(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})[0]


def _openvino_runner(path: Path, threads: int, precision: str = "f32") -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[compiled.output(0)].copy()


def _openvino_bf16_runner(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    # bfloat16 inside the graph (inputs and outputs stay float32): fast where the CPU has AMX or
    # AVX-512 BF16, emulated and slow where it has neither
    return _openvino_runner(path, threads, precision="bf16")


_RUNNERS = {
    "onnxruntime": _onnxruntime_runner,
    "openvino": _openvino_runner,
    "openvino-bf16": _openvino_bf16_runner,
}


def exported_graphs(
    features: FeatureModel, *, folder: Path | None = None, quiet: bool = False
) -> dict[str, Path]:
    """The ONNX graphs of ``features``' encoders: from ``folder`` if given and complete, else from
    the cache (exported there once; about a minute on a 2-core CPU)."""
    roles = list(_encoders(features))
    weights_id = features.model_id(max_side=None, min_side=None)
    if folder is not None:
        paths = {r: Path(folder) / f"{r}.onnx" for r in roles}
        missing = [str(p) for p in [*paths.values(), Path(folder) / "onnx.json"] if not p.is_file()]
        if missing:
            raise BackendError(f"{', '.join(missing)}: not found (write them with reiqa export)")
        try:
            found = json.loads((Path(folder) / "onnx.json").read_text()).get("weights_id")
        except (ValueError, AttributeError) as exc:
            raise BackendError(f"{Path(folder) / 'onnx.json'}: unreadable ({exc})") from exc
        if found != weights_id:
            raise BackendError(
                f"{folder}: graphs of other weights (id {found}, this model's is {weights_id}); export "
                "them again with reiqa export"
            )
        return paths
    target = cache_dir() / "onnx" / weights_id
    paths = {r: target / f"{r}.onnx" for r in roles}
    if not all(p.is_file() for p in paths.values()):
        if not quiet:
            print(f"reiqa: exporting the encoders to ONNX once, into {target}", file=sys.stderr)
        export_onnx(features, target)
    return paths


def use_backend(features: FeatureModel, backend: str, *, folder: Path | None = None) -> FeatureModel:
    """``features`` with its encoders run by ``backend`` ('torch' returns it unchanged). The
    engines run on the CPU; the graphs come from ``exported_graphs``."""
    _require(backend)
    if backend == "torch":
        return features
    if features.device.type != "cpu":
        raise BackendError(f"backend {backend!r} runs on the CPU; the model is on {features.device}")
    paths = exported_graphs(features, folder=folder)
    threads = torch.get_num_threads()
    swapped = {}
    for role, (_, encoder) in _encoders(features).items():
        try:
            run = _RUNNERS[backend](paths[role], threads)
        except Exception as exc:  # the engines raise their own error types
            raise BackendError(f"{paths[role]}: {backend} could not load it: {exc}") from exc
        swapped[role] = EngineEncoder(run, output_dim(encoder), backend)
    out = FeatureModel(
        swapped.get("quality"),
        swapped.get("content"),
        compat=features.compat,
        quality_norm=features.quality_norm.kind,
        content_norm=features.content_norm.kind,
    )
    out.backend = backend
    out.source_weights_hash = features.weights_hash()  # same model id as the torch encoders
    out.pixels_per_forward = ENGINE_PIXELS_PER_FORWARD.get(backend, features.pixels_per_forward)
    out.precision = ENGINE_PRECISION.get(backend, "fp32")
    return out
