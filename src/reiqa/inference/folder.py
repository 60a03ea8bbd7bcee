"""Model folders: reading one (``load``), and making one from encoders and a fitted regressor
(``assemble`` in memory, ``make_bundle`` from files, as ``reiqa bundle`` does).

A model folder::

    model.json              the model card (``reiqa.inference.card.ModelCard``)
    quality.safetensors     quality encoder backbone (float16 or float32)
    content.safetensors     content encoder backbone (optional)
    regressor.json / regressor.safetensors
    diagnosis.json / diagnosis.safetensors   the diagnosis head (optional: ``reiqa fit-diagnosis``)

``load()`` returns the embedded default model (when the package ships one), ``load(path)`` a
user's folder. Nothing is downloaded. Everything is checked when it is read: every field of
``model.json`` and ``regressor.json`` (types, ranges), every tensor (readable file, finite
values, the shapes of the architecture, the regressor's width): a problem is a ``ModelError``
whose message starts with the file, then names the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file

from reiqa.diagnosis import DiagnosisHead, has_head
from reiqa.engines import ENGINES, EngineError, choose
from reiqa.errors import CheckpointError, ModelError, RegressorError
from reiqa.features import FeatureModel, FeatureOptions
from reiqa.inference.card import DEFAULT_NORMS, ROLES, EncoderSpec, ModelCard, ScoreSpec
from reiqa.inference.model import ReIQA
from reiqa.models.backbones import build_backbone
from reiqa.models.checkpoints import load_encoder, load_state_strict
from reiqa.models.importers import import_official
from reiqa.regress import QualityRegressor
from reiqa.runtime import pick_device

__all__ = ["assemble", "load", "make_bundle", "model_folder"]


def load(
    path: str | Path | None = None,
    *,
    backend: str = "torch",
    device: str | torch.device | None = None,
    images: int | None = None,
) -> ReIQA:
    """The embedded default model (no argument or 'default'), or a model folder.

    Args:
        path: the folder; None or 'default' for the model that ships inside the package.
        backend: the engine that runs the encoders (a name of ``reiqa.engines.ENGINES``, always on
            the CPU but for torch), or 'auto': the engine ``reiqa.engines.choose`` picks on
            ``device`` for ``images`` images, and there the int8 encoders of ``reiqa quantize``
            instead of OpenVINO's float32 ones when they met their accuracy bar.
        device: 'cpu' (None), 'cuda', 'cuda:N', 'mps' or 'auto' (CUDA when torch sees a GPU; the
            CPU for an engine that runs on the CPU only).
        images: how many images the model will score (None: a long-lived model, a service).
    """
    requested = "cpu" if device is None else device
    on = pick_device(requested)
    engine = choose(backend, device_type=on.type, images=images)
    if engine.cpu_only and on.type != "cpu":
        if requested != "auto":
            raise EngineError(f"backend {engine.name!r} runs on the CPU, not on {on}; use backend='torch'")
        on = torch.device("cpu")  # device 'auto' on a machine with a GPU: the engine's CPU
    model = _read(path, on)  # built on its device: no copy for ReIQA.to to make
    if backend == "auto" and engine.name == "openvino" and _int8_passed(model):
        engine = ENGINES["openvino-int8"]
    return model.with_backend(engine.name) if engine.name != "torch" else model


def _int8_passed(model: ReIQA) -> bool:
    """Whether ``reiqa quantize`` made int8 encoders of this model that met their accuracy bar."""
    from reiqa.inference.int8 import read_int8

    try:
        return read_int8(model.features).passed
    except EngineError:
        return False


@contextmanager
def model_folder(path: str | Path | None) -> Iterator[Path]:
    """The folder of a model, for as long as the context lasts: the embedded default's (None or
    'default') or ``path``."""
    if path is None or str(path) == "default":
        root = resources.files("reiqa") / "weights" / "default"
        if not root.joinpath("model.json").is_file():
            raise ModelError(
                "this build of reiqa ships no embedded default model yet; "
                "pass a model folder: reiqa.load('path/to/model')"
            )
        with resources.as_file(root) as folder:
            yield Path(folder)
    else:
        yield Path(path)


def _read(path: str | Path | None, device: torch.device) -> ReIQA:
    with model_folder(path) as folder:
        return _read_dir(folder, device)


def _read_dir(directory: Path, device: torch.device) -> ReIQA:
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: not a reiqa model (no model.json)")
    card = ModelCard.read(meta_path)
    regressor = _read_regressor(directory)  # small: its errors come before the encoders are built
    encoders = {role: _read_backbone(directory, card.encoder(role), role) for role in ROLES}
    features = FeatureModel(
        encoders["quality"],
        encoders["content"],
        compat=card.features.compat,
        quality_norm=card.input_norm("quality"),
        content_norm=card.input_norm("content"),
        pooling=card.features.pooling,
    )
    _check_width(
        features, regressor, directory / "regressor.safetensors", "the bundle's files do not belong together"
    )
    head = DiagnosisHead.load(directory) if has_head(directory) else None
    if head is not None and head.layout != tuple(features.blocks()):
        raise ModelError(
            f"{directory / 'diagnosis.json'}: the head was fitted on features {list(head.layout)}, this "
            f"model's encoders give {features.blocks()}; fit it again: reiqa fit-diagnosis"
        )
    return ReIQA(features.to(device), regressor, card, head)


def _read_backbone(directory: Path, spec: EncoderSpec | None, role: str) -> torch.nn.Module | None:
    """The ``role`` encoder: its weights file readable, every tensor finite and of the shape and
    kind (float or integer) that ``spec.arch`` has."""
    if spec is None:
        return None
    path = directory / spec.file
    if not path.is_file():
        raise ModelError(f"{path}: missing encoder weights ({role}.file in model.json)")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for torn or empty files
        raise ModelError(f"{path}: unreadable safetensors file ({exc})") from exc
    with torch.device("meta"):  # shapes only: random initialisation would be thrown away (0.15 s)
        backbone = build_backbone(spec.arch, initialise=False)
    own = backbone.state_dict()
    for key, value in state.items():
        if key in own and own[key].is_floating_point() != value.is_floating_point():
            raise ModelError(f"{path}: tensor {key!r} is {value.dtype}, a {spec.arch} has {own[key].dtype}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    for key, value in state.items():
        # NaN and infinity carry into a sum, which is several times faster than isfinite on a CPU
        nonfinite = value.is_floating_point() and not math.isfinite(float(value.sum()))
        if nonfinite and not torch.isfinite(value).all():
            raise ModelError(f"{path}: tensor {key!r} contains NaN or infinity")
    try:
        load_state_strict(backbone, state, path, assign=True)
    except CheckpointError as exc:
        raise ModelError(f"{exc} (a {spec.arch}, as {role}.arch in model.json says)") from exc
    return backbone


def _read_regressor(directory: Path) -> QualityRegressor:
    for name in ("regressor.json", "regressor.safetensors"):
        if not (directory / name).is_file():
            raise ModelError(f"{directory / name}: missing (a model needs regressor.json and .safetensors)")
    try:
        return QualityRegressor.load(directory)
    except RegressorError as exc:  # its message starts with the file
        raise ModelError(str(exc)) from exc


def _check_width(features: FeatureModel, regressor: QualityRegressor, where: object, fix: str) -> None:
    width = sum(w for _, w in features.blocks())
    if regressor.coef_ is not None and len(regressor.coef_) != width:
        raise ModelError(
            f"{where}: the regressor was fitted on {len(regressor.coef_)} features, these encoders give "
            f"{width}; {fix}"
        )


def assemble(
    quality: torch.nn.Module | None,
    content: torch.nn.Module | None,
    regressor: QualityRegressor,
    *,
    quality_arch: str | None,
    content_arch: str | None,
    quality_norm: str = "none",
    content_norm: str = "imagenet",
    name: str = "reiqa model",
    score: ScoreSpec | None = None,
    features: FeatureOptions | None = None,
) -> ReIQA:
    """A model from backbones and a fitted regressor (``save`` writes it as a folder)."""
    features = features or FeatureOptions()
    score = score or ScoreSpec()
    card = ModelCard(
        name=name,
        quality=EncoderSpec(quality_arch or "", quality_norm, "quality.safetensors") if quality else None,
        content=EncoderSpec(content_arch or "", content_norm, "content.safetensors") if content else None,
        score=score,
        features=features,
    )
    net = FeatureModel(
        quality,
        content,
        compat=features.compat,
        quality_norm=quality_norm,
        content_norm=content_norm,
        pooling=features.pooling,
    )
    _check_width(net, regressor, "assemble", "fit it on features of the same encoders")
    return ReIQA(net, regressor, card)


def _encoder_from_file(path: Path, role: str) -> tuple[torch.nn.Module, str, str]:
    """(backbone, arch, input_norm) of our encoder.json/.safetensors, or of an official ResNet-50
    .pth release (whose input normalisation is the role's default)."""
    if path.suffix in (".pth", ".pt", ".tar"):
        return import_official(path, arch="resnet50")[0], "resnet50", DEFAULT_NORMS[role]
    backbone, meta = load_encoder(path)
    return backbone, meta.arch, meta.input_norm or DEFAULT_NORMS[role]


def _source_name(regressor: QualityRegressor) -> str | None:
    """Where the regressor's opinion scores came from, as the card shows it: a file name with its
    hash (``reiqa fit`` records both), or the file name of an older regressor's path."""
    scores = regressor.info.scores
    if scores is None:
        return None
    if isinstance(scores, str):
        return Path(scores).name
    return f"{scores.file} (sha256 {str(scores.sha256)[:16]})"


def make_bundle(
    quality: Path | None,
    content: Path | None,
    regressor_dir: Path,
    out: Path,
    *,
    name: str = "reiqa model",
    half: bool = True,
    options: FeatureOptions | None = None,
) -> Path:
    """Write a model folder from encoder files and a regressor folder (``reiqa bundle``).

    ``options`` must be the feature options the regressor's features were extracted with: the
    bundle is refused when the encoders and options do not reproduce the regressor's feature
    ``model_id``."""
    if quality is None and content is None:
        raise ModelError("a model needs a quality and/or a content encoder")
    options = options or FeatureOptions()
    regressor = QualityRegressor.load(regressor_dir)
    q, q_arch, q_norm = _encoder_from_file(Path(quality), "quality") if quality else (None, None, "none")
    c, c_arch, c_norm = _encoder_from_file(Path(content), "content") if content else (None, None, "imagenet")
    score_range = regressor.info.score_range
    model = assemble(
        q,
        c,
        regressor,
        quality_arch=q_arch,
        content_arch=c_arch,
        quality_norm=q_norm,
        content_norm=c_norm,
        name=name,
        score=ScoreSpec(tuple(score_range) if score_range else None, True, _source_name(regressor)),
        features=options,
    )
    expected = regressor.info.model_id
    if expected and model.features.model_id(max_side=options.max_side, min_side=options.min_side) != expected:
        raise ModelError(
            f"{regressor_dir}: the regressor was fitted on features of other encoder weights or other "
            f"feature options (max_side, min_side, compat) than these; extract the features with the "
            f"same encoders and options, then fit again"
        )
    return model.save(out, half=half)
