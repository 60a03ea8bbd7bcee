"""The engines that can run a model's encoders, in one table: what each needs installed, how it
runs an exported graph, how many pixels it takes per forward pass, its arithmetic, and which one
``auto`` picks. Every other place (the CLI's help, ``reiqa.load``, the feature model, the
exported-graph loader) reads this table; nothing here imports torch or an engine package until
an engine is started, so the command line's help stays instant.

Users name an engine with ``--backend`` / ``backend=``: ``torch`` runs the encoders in PyTorch
(CPU or CUDA) and ``torch-fp16`` the same under float16 autocast (CUDA); ``onnxruntime``,
``openvino`` and ``openvino-bf16`` run ONNX graphs exported from them
(``reiqa.inference.onnx``) on the CPU, and ``openvino-int8`` the int8 encoders that
``reiqa quantize`` made (``reiqa.inference.quantize``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reiqa.errors import ReiqaError

__all__ = ["AUTO_MIN_IMAGES", "ENGINES", "Engine", "EngineError", "Runner", "choose", "get"]

#: an exported graph, started: (N, 3, H, W) float32 normalised images -> (N, D) float32 features
Runner = Callable[[Any], Any]

#: ``auto`` picks OpenVINO (1.2x torch's images/s on a 2-core CPU, scores equal to 1e-4; see
#: docs/reports/score-backends.json) for CPU jobs of at least this many images, where its longer
#: start (about 1 s, and a one-time export of the graphs) pays off; torch otherwise
AUTO_MIN_IMAGES = 100


class EngineError(ReiqaError):
    """An engine is unknown, not installed, or could not load or export the encoders."""


def cache_dir() -> Path:
    """Where exported graphs, int8 sets and compiled models are kept: $REIQA_CACHE, else
    $XDG_CACHE_HOME/reiqa, else ~/.cache/reiqa."""
    if os.environ.get("REIQA_CACHE"):
        return Path(os.environ["REIQA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reiqa"


def _onnxruntime(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})[0]


def _openvino(path: Path, threads: int, precision: str = "f32") -> Runner:
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    cache = _compiled_cache()
    if cache is not None:
        config["CACHE_DIR"] = str(cache)
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[compiled.output(0)].copy()


def _compiled_cache() -> Path | None:
    """Where OpenVINO keeps compiled models between runs (a 0.8 s compile of both encoders
    becomes a 0.1 s read): ``$REIQA_CACHE``'s ``openvino`` folder; None when
    ``REIQA_NO_COMPILE_CACHE`` is set or the folder cannot be made."""
    if os.environ.get("REIQA_NO_COMPILE_CACHE"):
        return None
    folder = cache_dir() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def _openvino_bf16(path: Path, threads: int) -> Runner:
    # bfloat16 inside the graph (inputs and outputs stay float32): fast where the CPU has AMX or
    # AVX-512 BF16, emulated and slow where it has neither
    return _openvino(path, threads, precision="bf16")


@dataclass(frozen=True)
class Engine:
    """One engine and every fact about it.

    Attributes:
        name: what ``--backend`` and ``backend=`` call it.
        module: the Python package it needs (None: torch itself).
        extra: the pip extra of reiqa that installs ``module``.
        start: (graph file, threads) -> a runner; None for torch, which runs the modules.
        pixels_per_forward: images of one size go through the encoders together, at most this
            many pixels per forward pass.
        precision: its arithmetic; anything but 'fp32' gives scores a model id of their own, so
            outputs and caches never mix them with float32 ones.
        quantized: it runs int8 encoders made by ``reiqa quantize``
            (``reiqa.inference.quantize``), not the exported float32 graphs.
        decode_ahead: batches a thread decodes ahead of its encoders (0: in line). OpenVINO, 192
            500x500 photos on 2 cores: 1.045x faster with 2, 83 MiB more; torch: 0.87x (its
            threads and the decoder's resize contend), so torch decodes in line.
        cpu_only: runs on the CPU only.
        auto: ``auto`` may pick it.
        note: one line for the command line's help.
    """

    name: str
    module: str | None
    extra: str | None
    start: Callable[[Path, int], Runner] | None
    pixels_per_forward: int
    precision: str
    cpu_only: bool
    auto: bool
    note: str
    quantized: bool = False
    decode_ahead: int = 0

    def installed(self) -> bool:
        """Whether its package (and, for graph engines, the ONNX exporter) can be imported."""
        needed = [self.module, "onnxscript"] if self.module else []
        return all(importlib.util.find_spec(m) is not None for m in needed)

    def require(self) -> Engine:
        """This engine, checked to be installed (EngineError with the pip command otherwise)."""
        if self.module is None:
            return self
        try:
            __import__(self.module)
        except ImportError as exc:
            raise EngineError(
                f"backend {self.name!r} needs the {self.module} package: pip install 'reiqa[{self.extra}]'"
            ) from exc
        return self


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            name="torch",
            module=None,
            extra=None,
            start=None,
            # Images of one size go through the encoders at most 2^19 pixels per forward pass
            # (two 500x500, one 1024x768; a 12 Mpx photo alone): bounds memory, keeps
            # activations in cache. Default model, 2 CPU cores, 500x500 photos, in one run: 2^19
            # scores 7.5 images/s against 8.0 for 2^20, and ``reiqa score`` peaks at 0.85 GB
            # against 1.04 GB.
            pixels_per_forward=2**19,
            precision="fp32",
            cpu_only=False,
            auto=True,
            note="PyTorch, CPU or CUDA",
        ),
        Engine(
            name="torch-fp16",
            module=None,
            extra=None,
            start=None,
            # float16 autocast on CUDA; more pixels per pass: the GPU wants large batches
            pixels_per_forward=2**23,
            precision="fp16",
            cpu_only=False,
            auto=False,  # scores move (docs/reports/gpu.json): opt-in only
            note="PyTorch with float16 autocast, CUDA only",
        ),
        Engine(
            name="onnxruntime",
            module="onnxruntime",
            extra="onnx",
            start=_onnxruntime,
            pixels_per_forward=2**19,  # one photo per pass cost it 24 % of its speed
            precision="fp32",
            cpu_only=True,
            auto=False,  # slower than torch on the CPU (docs/reports/score-backends.json)
            note="ONNX Runtime, CPU",
        ),
        Engine(
            name="openvino",
            module="openvino",
            extra="openvino",
            start=_openvino,
            # OpenVINO keeps activation buffers per compiled encoder, sized for the largest
            # batch it has run: one 500x500 photo per pass keeps ``reiqa score`` under 1 GB
            # (0.92 against 1.07 GB in-process, 64 photos) for 11 % of its speed
            pixels_per_forward=2**18,
            precision="fp32",
            cpu_only=True,
            auto=True,
            note="OpenVINO, CPU",
            decode_ahead=2,
        ),
        Engine(
            name="openvino-bf16",
            module="openvino",
            extra="openvino",
            start=_openvino_bf16,
            pixels_per_forward=2**18,
            precision="bf16",
            cpu_only=True,
            auto=False,  # moves scores by up to 3.25 points: opt-in only
            note="bfloat16 inside OpenVINO, 1.6x faster on CPUs with AMX or AVX-512 BF16, scores up "
            "to a few points off (never picked by auto)",
            decode_ahead=2,
        ),
        Engine(
            name="openvino-int8",
            module="openvino",
            extra="openvino",
            start=_openvino,  # float32 hint: the layers left in float32 stay float32
            pixels_per_forward=2**18,
            precision="int8",
            cpu_only=True,
            # picked by auto only where `reiqa quantize` made int8 encoders of the model that met
            # their accuracy bar (reiqa.inference.folder.load)
            auto=False,
            note="int8 encoders made by `reiqa quantize` (NNCF), OpenVINO, CPU; auto picks them "
            "when they met their accuracy bar",
            quantized=True,
            decode_ahead=2,
        ),
    )
}


def get(name: str) -> Engine:
    """The engine called ``name`` ('auto' is resolved by :func:`choose`, not here)."""
    try:
        return ENGINES[name]
    except KeyError:
        raise EngineError(f"unknown backend {name!r}; one of auto, {', '.join(ENGINES)}") from None


def choose(requested: str, *, device_type: str = "cpu", images: int | None = None) -> Engine:
    """The engine for ``requested``: itself (checked to be installed), or for 'auto' the first graph
    engine of the table that ``auto`` may pick (OpenVINO) when the job runs on the CPU, has at
    least ``AUTO_MIN_IMAGES`` images (None: a long-running service) and the engine and the ONNX
    exporter are installed; torch otherwise."""
    if requested != "auto":
        return get(requested).require()
    if device_type != "cpu" or (images is not None and images < AUTO_MIN_IMAGES):
        return ENGINES["torch"]
    graphs = (e for e in ENGINES.values() if e.auto and e.start is not None and e.installed())
    return next(graphs, ENGINES["torch"])


def help_text() -> str:
    """The ``--backend`` option's help, from the table."""
    names = "; ".join(f"{e.name}: {e.note}" for e in ENGINES.values())
    return (
        f"Engine for the encoders. {names}. Graph engines export the ONNX graphs once into the cache "
        f"(see `reiqa export`). auto: OpenVINO on the CPU for {AUTO_MIN_IMAGES} images or more "
        "(serve: always) when installed, else torch."
    )
