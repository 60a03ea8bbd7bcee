"""int8 encoders for OpenVINO: post-training quantization with NNCF, calibrated on unlabelled
photos, with accuracy control measured in score points.

``quantize`` splits the photos into a calibration set and a hold-out (by file, seeded), records
the normalised inputs each encoder sees while the float32 model scores them (full and half scale,
as ``reiqa score`` prepares them), quantizes each encoder with NNCF (int8 weights per channel,
int8 activations per tensor), then hands the encoder to NNCF's accuracy control: the layers whose
quantization moves hold-out scores most go back to float32, one at a time, until that encoder's
share of the score error is within its part of the bar (``AccuracyBar``), or until
``max_reverts`` layers went back. The two encoders are then checked together on the hold-out:
``int8.json`` records whether the bar is met, and ``--backend auto`` picks the int8 encoders
only when it is.

An int8 set is a folder (in the cache, ``int8_dir``, unless written elsewhere)::

    quality.xml / quality.bin   the quality encoder, OpenVINO IR with int8 layers
    content.xml / content.bin
    int8.json                   weights id, calibration, hold-out figures, the bar, file digests

Scores of int8 encoders have a model id of their own (the engine's precision, ``int8:<id>``, is
part of it), so outputs and caches never mix them with float32 ones nor with another
calibration's. Quantizing needs ``nncf`` and ``openvino`` (``pip install 'reiqa[int8]'``);
running the int8 encoders needs only ``openvino``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reiqa.atomic import write_json_atomic
from reiqa.digest import file_sha256
from reiqa.engines import EngineError
from reiqa.inference.int8 import FORMAT, Int8Set, int8_dir, read_int8
from reiqa.inference.onnx import _Flat

if TYPE_CHECKING:
    from reiqa.inference.model import ReIQA

__all__ = [
    "FORMAT",
    "AccuracyBar",
    "Int8Set",
    "QuantizationReport",
    "int8_dir",
    "quantize",
    "read_int8",
]

log = logging.getLogger(__name__)

#: OpenVINO's CPU plugin runs the layers left in float32 in float32 (without the hint, bfloat16
#: on CPUs that have it, which moves scores by points)
PRECISION_HINT = "f32"


@dataclass(frozen=True)
class AccuracyBar:
    """How far int8 scores may be from float32 ones on the hold-out photos: at least ``share`` of
    them within ``points``. Each encoder gets ``points / sqrt(encoders)`` of it while its layers
    are restored (errors of the two encoders add like independent ones), and the two together
    are held to the whole of it."""

    points: float = 1.0
    share: float = 0.99

    def quantile(self, errors: np.ndarray) -> float:
        """The ``share`` quantile of |errors|: what must be <= ``points``."""
        return float(np.quantile(np.abs(errors), self.share)) if len(errors) else 0.0


@dataclass
class QuantizationReport:
    """What ``int8.json`` holds besides the file digests."""

    format: str
    id: str
    weights_id: str
    model_id: str
    calibration: dict[str, Any]
    holdout: dict[str, Any]
    bar: dict[str, float]
    passed: bool
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


# -- calibration inputs --------------------------------------------------------------------------


@dataclass
class _Inputs:
    """Per photo, per encoder: its (1, 3, H, W) inputs at full and half scale, as scored."""

    photos: list[Path]
    arrays: dict[str, list[tuple[np.ndarray, np.ndarray]]]


def _record_inputs(model: ReIQA, photos: Sequence[Path], progress: bool) -> tuple[_Inputs, list[str]]:
    """Score ``photos`` one at a time with ``model`` (float32), recording what each encoder is
    given. Returns the inputs of the photos that were read, and the errors of those that were not."""
    features = model.features
    encoders = features.encoders()
    seen: dict[str, list[np.ndarray]] = {role: [] for role in encoders}
    hooks = []
    for role, (_, encoder) in encoders.items():

        def record(_module: torch.nn.Module, args: tuple[Any, ...], role: str = role) -> None:
            seen[role].append(np.ascontiguousarray(args[0].detach().to("cpu", torch.float32).numpy()))

        hooks.append(encoder.register_forward_pre_hook(record))
    kept, arrays, errors = [], {role: [] for role in encoders}, []
    try:
        for record in model.score_files(list(photos), batch_size=1, progress=progress):
            got = {role: seen[role][:] for role in encoders}
            for values in seen.values():
                values.clear()
            if record.error is not None:
                errors.append(record.error)
                continue
            kept.append(Path(record.path))
            for role, (full, half) in got.items():
                arrays[role].append((full, half))  # FeatureModel.forward: full scale first
    finally:
        for hook in hooks:
            hook.remove()
    return _Inputs(kept, arrays), errors


def _split(photos: Sequence[Path], holdout: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Calibration and hold-out photos, by file, seeded; at least 10 held out."""
    order = sorted(Path(p) for p in photos)
    random.Random(seed).shuffle(order)
    n_out = max(10, round(holdout * len(order)))
    if len(order) - n_out < 20:
        raise EngineError(
            f"quantizing needs at least {20 + n_out} photos ({n_out} held out to check scores); "
            f"got {len(order)}"
        )
    return order[n_out:], order[:n_out]


def _digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(file_sha256(p) for p in paths):
        h.update(p.encode())
    return h.hexdigest()[:16]


# -- quantizing ----------------------------------------------------------------------------------


def _score_weights(model: ReIQA) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per encoder, the regressor's weights on its full- and half-scale features: a change d of
    those features moves the score by w . d."""
    reg = model.regressor
    w = np.asarray(reg.coef_ / reg.scale_, dtype=np.float64)
    out, start = {}, 0
    widths = dict(model.features.blocks())
    for role in model.features.encoders():
        width = widths[f"{role}_full"]
        out[role] = (w[start : start + width], w[start + width : start + 2 * width])
        start += 2 * width
    return out


def _convert(encoder: torch.nn.Module) -> Any:
    """A torch encoder as an OpenVINO model (batch norms folded into the convolutions; any batch
    and image size)."""
    import openvino as ov

    module = _Flat(encoder).to("cpu", torch.float32).eval()
    with torch.no_grad():
        return ov.convert_model(
            module, example_input=torch.rand(1, 3, 224, 224), input=[ov.PartialShape([-1, 3, -1, -1])]
        )


def _count_int8(compiled: Any) -> tuple[int, int]:
    """(convolutions that run in int8, all convolutions) of a compiled model."""
    int8 = total = 0
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            total += 1
            int8 += info["runtimePrecision"].astype(str) in ("u8", "i8")
    return int8, total


def _quantize_encoder(
    encoder: torch.nn.Module,
    weights: tuple[np.ndarray, np.ndarray],
    calibration: list[tuple[np.ndarray, np.ndarray]],
    held_out: list[tuple[np.ndarray, np.ndarray]],
    budget: float,
    bar: AccuracyBar,
    max_reverts: int,
) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """One encoder in int8: NNCF's quantization, then its accuracy control with this encoder's
    score error on the held-out photos (``weights``: the regressor's on its full- and half-scale
    features). Returns the quantized model, the held-out score errors, and a description."""
    import nncf
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": PRECISION_HINT}
    fp32 = _convert(encoder)
    fp32_run = core.compile_model(fp32, "CPU", config)
    w_full, w_half = weights
    items = [
        (full, half, fp32_run(full)[0][0].astype(np.float64), fp32_run(half)[0][0].astype(np.float64))
        for full, half in held_out
    ]

    def score_errors(compiled: Any, data: Sequence[tuple[np.ndarray, ...]]) -> np.ndarray:
        return np.array(
            [
                w_full @ (compiled(full)[0][0] - ref_full) + w_half @ (compiled(half)[0][0] - ref_half)
                for full, half, ref_full, ref_half in data
            ]
        )

    def validate(compiled: Any, data: Any) -> tuple[float, list[float]]:
        # NNCF wants a metric that is not 0 for the float32 model: 100 - the error quantile
        e = np.abs(score_errors(compiled, list(data)))
        return 100.0 - bar.quantile(e), [100.0 - float(v) for v in e]

    restorer = nncf.quantization.advanced_parameters.AdvancedAccuracyRestorerParameters(
        max_num_iterations=max_reverts, ranking_subset_size=min(len(items), 50)
    )
    log.warning("reiqa: quantizing an encoder (%d calibration inputs)", 2 * len(calibration))
    quantized = nncf.quantize_with_accuracy_control(
        fp32,
        nncf.Dataset([x for pair in calibration for x in pair]),
        nncf.Dataset(items, lambda item: item[0]),
        validate,
        max_drop=budget,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=2 * len(calibration),
        # BiasCorrection rather than its fast variant: halves the score error (CLIVE, p99 of
        # |int8 - float32| 7.2 -> 3.4 points before any layer goes back to float32), because
        # pooled features are channel means, which a per-channel shift moves directly
        fast_bias_correction=False,
        advanced_accuracy_restorer_parameters=restorer,
    )
    compiled = core.compile_model(quantized, "CPU", config)
    errors = score_errors(compiled, items)
    int8, total = _count_int8(compiled)
    described = {
        "int8_convolutions": int8,
        "convolutions": total,
        "holdout_quantile_points": bar.quantile(errors),
    }
    return quantized, errors, described


def quantize(
    model: ReIQA,
    photos: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    bar: AccuracyBar = AccuracyBar(),
    holdout: float = 0.2,
    max_photos: int | None = 300,
    max_reverts: int = 40,
    seed: int = 0,
    progress: bool = False,
    on_skip: Callable[[str], None] | None = None,
) -> QuantizationReport:
    """Quantize ``model``'s encoders to int8 for OpenVINO; write them and ``int8.json`` into
    ``out`` (default: ``int8_dir``, where ``--backend openvino-int8`` reads them).

    Args:
        model: a float32 model on the torch backend, CPU.
        photos: unlabelled photos like the ones to be scored (a few hundred).
        bar: how close to float32 the hold-out scores must be.
        holdout: the share of ``photos`` held out to check scores (at least 10).
        max_photos: use at most this many of ``photos`` (a seeded draw; None: all).
        max_reverts: at most this many layers per encoder go back to float32.
        seed: the calibration / hold-out split.
        on_skip: told the error of each photo that could not be read.
    """
    missing = [m for m in ("nncf", "openvino") if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineError(f"quantizing needs {' and '.join(missing)}: pip install 'reiqa[int8]'")
    if model.backend != "torch" or model.device.type != "cpu":
        raise EngineError("quantize a float32 model on the CPU (backend 'torch')")
    started = time.perf_counter()
    photos = sorted(Path(p) for p in photos)
    if max_photos is not None and len(photos) > max_photos:
        photos = random.Random(seed).sample(photos, max_photos)
    calibration, held_out = _split(photos, holdout, seed)
    cal, bad = _record_inputs(model, calibration, progress)
    val, bad_val = _record_inputs(model, held_out, progress)
    for error in bad + bad_val:
        if on_skip is not None:
            on_skip(error)
    if len(cal.photos) < 20 or len(val.photos) < 10:
        raise EngineError(
            f"too few readable photos: {len(cal.photos)} to calibrate, {len(val.photos)} held out"
        )
    weights = _score_weights(model)
    roles = list(weights)
    budget = bar.points / math.sqrt(len(roles))  # each encoder's part of the bar
    quantized, errors, described = {}, {}, {}
    for role in roles:
        quantized[role], errors[role], described[role] = _quantize_encoder(
            model.features.encoders()[role][1],
            weights[role],
            cal.arrays[role],
            val.arrays[role],
            budget,
            bar,
            max_reverts,
        )
    weights_id, digest = model.features.model_id(max_side=None, min_side=None), _digest(cal.photos)
    settings = [weights_id, digest, asdict(bar), seed, holdout, max_reverts]
    figures = _holdout_figures(np.sum([errors[r] for r in roles], axis=0), bar)
    report = QuantizationReport(
        format=FORMAT,
        id=hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12],
        weights_id=weights_id,
        model_id=model.model_id,
        calibration={"photos": len(cal.photos), "digest": digest, "seed": seed},
        holdout=figures,
        bar=asdict(bar),
        passed=figures["share_within_bar"] >= bar.share,
        encoders=described,
        seconds=time.perf_counter() - started,
    )
    _write(quantized, Path(out) if out is not None else int8_dir(model.features), report)
    return report


def _holdout_figures(errors: np.ndarray, bar: AccuracyBar) -> dict[str, Any]:
    """What ``int8.json`` says of the held-out photos' score errors (both encoders together)."""
    e = np.abs(errors)
    return {
        "photos": len(e),
        "max_abs_diff": float(e.max()),
        "p99_abs_diff": float(np.quantile(e, 0.99)),
        "share_within_bar": float(np.mean(e <= bar.points)),
    }


def _write(graphs: dict[str, Any], folder: Path, report: QuantizationReport) -> None:
    """The IR files, then ``int8.json`` (with their digests) last: a set is whole or not read."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "int8.json").unlink(missing_ok=True)  # the old set stops being valid first
    staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder))
    files = {}
    try:
        for role, graph in graphs.items():
            ov.save_model(graph, str(staging / f"{role}.xml"), compress_to_fp16=False)
            for suffix in (".bin", ".xml"):
                name = f"{role}{suffix}"
                files[name] = file_sha256(staging / name)
                os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json_atomic(folder / "int8.json", {**asdict(report), "files": files})
