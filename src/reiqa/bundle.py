"""A Re-IQA model bundle: encoders + regressor -> a quality score per image.

A bundle is a folder::

    model.json              the model card (``ModelCard``): format, name, encoders (architecture,
                            input normalisation, weights file), score range and direction,
                            feature options
    quality.safetensors     quality encoder backbone (float16 or float32)
    content.safetensors     content encoder backbone (optional)
    regressor.json / regressor.safetensors

``reiqa.load()`` returns the embedded default model (when the package ships one),
``reiqa.load(path)`` a user's bundle. Nothing is downloaded. Everything is checked when it is
read: every field of ``model.json`` and ``regressor.json`` (types, ranges), every tensor (readable
file, finite values, the shapes of the architecture, the regressor's width): a problem is a
``ModelError`` whose message starts with the file, then names the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor

from reiqa.errors import CheckpointError, ConfigError, ModelError, RegressorError
from reiqa.features import FeatureModel, FeatureOptions, encode, encode_mixed, iter_features
from reiqa.io import DEFAULT_MAX_PIXELS, array_to_tensor, check_images, load_image, to_tensor
from reiqa.models.backbones import BACKBONES, NORMS, build_backbone
from reiqa.models.checkpoints import load_encoder, load_state_strict
from reiqa.models.importers import import_official
from reiqa.regress import QualityRegressor
from reiqa.resize import cap_size

__all__ = ["FORMAT", "EncoderSpec", "ModelCard", "ReIQA", "ScoreRecord", "ScoreSpec", "assemble", "load"]

FORMAT = "reiqa-model-1"
ROLES = ("quality", "content")
DEFAULT_NORMS = {"quality": "none", "content": "imagenet"}


# -- the model card ------------------------------------------------------------------------------


def _fields(raw: object, cls: type, where: str) -> dict[str, Any]:
    """``raw`` as keyword arguments of dataclass ``cls``: an object with only known keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object, got {raw!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    return dict(raw)


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder of a bundle: its architecture, the input normalisation it was trained with,
    and its weights file inside the bundle folder (a plain file name)."""

    arch: str
    input_norm: str
    file: str

    def check(self, role: str) -> None:
        if not isinstance(self.arch, str) or self.arch not in BACKBONES:
            raise ConfigError(f"{role}.arch: unknown architecture {self.arch!r}; one of {sorted(BACKBONES)}")
        if not isinstance(self.input_norm, str) or self.input_norm not in NORMS:
            raise ConfigError(f"{role}.input_norm: {self.input_norm!r} is not one of {sorted(NORMS)}")
        if not isinstance(self.file, str) or not self.file or Path(self.file).name != self.file:
            raise ConfigError(f"{role}.file must be a file name inside the model folder, got {self.file!r}")

    @classmethod
    def from_dict(cls, raw: object, role: str) -> EncoderSpec:
        values = _fields(raw, cls, role)
        values.setdefault("input_norm", DEFAULT_NORMS[role])
        values.setdefault("file", f"{role}.safetensors")
        if "arch" not in values:
            raise ConfigError(f"{role}.arch is missing")
        spec = cls(**values)
        spec.check(role)
        return spec


@dataclass(frozen=True)
class ScoreSpec:
    """What the scores mean: their range on the training data, their direction, and where the
    opinion scores came from (``reiqa bundle`` writes the scores file's name and hash, as
    ``reiqa fit`` recorded them)."""

    range: tuple[float, float] | None = None
    higher_is_better: bool = True
    source: str | None = None

    def __post_init__(self) -> None:
        if self.range is not None:
            ok = isinstance(self.range, list | tuple) and len(self.range) == 2
            ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.range)
            if not ok or not math.isfinite(self.range[0]) or not math.isfinite(self.range[1]):
                raise ConfigError(f"score.range must be two finite numbers or null, got {self.range!r}")
            if not self.range[0] < self.range[1]:
                raise ConfigError(f"score.range must be [low, high] with low < high, got {list(self.range)}")
            object.__setattr__(self, "range", (float(self.range[0]), float(self.range[1])))
        if not isinstance(self.higher_is_better, bool):
            raise ConfigError(f"score.higher_is_better must be true or false, got {self.higher_is_better!r}")
        if self.source is not None and not isinstance(self.source, str):
            raise ConfigError(f"score.source must be a string or null, got {self.source!r}")

    @classmethod
    def from_dict(cls, raw: object) -> ScoreSpec:
        return cls(**_fields(raw, cls, "score"))


@dataclass(frozen=True)
class ModelCard:
    """The contents of ``model.json``. Top-level keys reiqa does not know (a description, a
    licence) are kept in ``extra`` and written back; inside the known sections every key is
    checked."""

    name: str = "reiqa model"
    quality: EncoderSpec | None = None
    content: EncoderSpec | None = None
    score: ScoreSpec = field(default_factory=ScoreSpec)
    features: FeatureOptions = field(default_factory=FeatureOptions)
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise ConfigError(
                f"format {self.format!r}, expected {FORMAT!r} (a model of another reiqa version?)"
            )
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be a string, got {self.name!r}")
        if self.quality is None and self.content is None:
            raise ConfigError("a model needs a quality and/or a content encoder")
        for role in ROLES:
            spec = getattr(self, role)
            if spec is not None:
                spec.check(role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "quality": dataclasses.asdict(self.quality) if self.quality else None,
            "content": dataclasses.asdict(self.content) if self.content else None,
            "score": {**dataclasses.asdict(self.score), "range": list(self.score.range or []) or None},
            "features": self.features.to_dict(),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, raw: object) -> ModelCard:
        if not isinstance(raw, dict):
            raise ConfigError(f"model.json must be an object, got {type(raw).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in raw.items() if k in known}
        values["extra"] = {k: v for k, v in raw.items() if k not in known}
        if "format" not in values:
            raise ConfigError(f"format is missing, expected {FORMAT!r}")
        for role in ROLES:
            if values.get(role) is not None:
                values[role] = EncoderSpec.from_dict(values[role], role)
        values["score"] = ScoreSpec.from_dict(values.get("score", {}))
        values["features"] = FeatureOptions.from_dict(values.get("features", {}))
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the model card ({exc})") from exc
        try:
            return cls.from_dict(raw)
        except (ConfigError, TypeError) as exc:
            raise ModelError(f"{path}: {exc}") from exc


# -- the model -----------------------------------------------------------------------------------


@dataclass
class ScoreRecord:
    path: str
    score: float | None
    error: str | None = None


def scored_record(name: str, value: float | None, error: str | None = None) -> ScoreRecord:
    """A ScoreRecord for ``name``: ``value``, or a failure when there is none (``error``, the
    reason) or it is not finite (never written as a score)."""
    if value is not None and not math.isfinite(value):
        return ScoreRecord(name, None, f"{name}: the model gave a non-finite score ({value})")
    return ScoreRecord(name, value, error)


def records_of(
    names: Sequence[str], decoded: Sequence[Tensor | str], scores: Iterable[float]
) -> list[ScoreRecord]:
    """One ScoreRecord per name, in order: the reason where ``decoded`` holds one (a string), else
    the next of ``scores`` (the scores of the decoded images, in order)."""
    values = iter(scores)
    return [
        ScoreRecord(name, None, item) if isinstance(item, str) else scored_record(name, float(next(values)))
        for name, item in zip(names, decoded, strict=True)
    ]


def _check_width(features: FeatureModel, regressor: QualityRegressor, where: object, fix: str) -> None:
    width = sum(w for _, w in features.blocks())
    if regressor.coef_ is not None and len(regressor.coef_) != width:
        raise ModelError(
            f"{where}: the regressor was fitted on {len(regressor.coef_)} features, these encoders give "
            f"{width}; {fix}"
        )


ACCEPTED = (
    "a path, a list of paths, a PIL image, a torch tensor (3, H, W) or (N, 3, H, W), or a numpy "
    "array (H, W, 3), (3, H, W), (N, H, W, 3) or (N, 3, H, W); float in [0, 1] or uint8"
)


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


class ReIQA:
    """Scores images. ``score`` takes

    - a path (str or Path): a float (ImageLoadError if the file cannot be read);
    - a list or tuple of paths: an array, NaN for files that cannot be read;
    - a PIL image: a float;
    - a torch tensor (3, H, W) -> a float, (N, 3, H, W) -> an array;
    - a numpy array (H, W, 3) or (3, H, W) -> a float, (N, H, W, 3) or (N, 3, H, W) -> an array
      (a shape that fits both layouts, such as (3, 5, 3), is refused).

    Tensors and arrays are float in [0, 1] or uint8 (divided by 255); NaN, infinity, values
    outside [0, 1], other dtypes (bool, int16, ...), other channel counts and empty images are a
    ValueError, other types a TypeError. ``score_files`` yields one record per file, with the
    error of files that cannot be read (batch jobs go on)."""

    def __init__(self, features: FeatureModel, regressor: QualityRegressor, card: ModelCard) -> None:
        # channels-last convolutions: 35 % faster on CPU (oneDNN), the layout cuDNN prefers too
        self.features = features.to(memory_format=torch.channels_last)
        self.regressor = regressor
        self.card = card
        self.device = torch.device("cpu")

    @property
    def higher_is_better(self) -> bool:
        return self.card.score.higher_is_better

    @property
    def score_range(self) -> tuple[float, float] | None:
        return self.card.score.range

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def max_side(self) -> int | None:
        """Images whose longer side exceeds this are downscaled (antialiased) before scoring;
        None scores them at full size. The model card sets it; setting it changes the scores of
        larger images (the regressor saw images up to this size)."""
        return self.card.features.max_side

    @max_side.setter
    def max_side(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"max_side must be a positive number of pixels or None, got {value}")
        options = dataclasses.replace(self.card.features, max_side=value)
        self.card = dataclasses.replace(self.card, features=options)

    @property
    def model_id(self) -> str:
        """16 hex digits over what the scores depend on: the encoders' weights, the feature
        options and the regressor (mean, scale, coefficients, intercept)."""
        opts = self.card.features
        h = hashlib.sha256(self.features.model_id(max_side=opts.max_side, min_side=opts.min_side).encode())
        reg = self.regressor
        for array in (reg.mean_, reg.scale_, reg.coef_):
            h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        h.update(repr(float(reg.intercept_)).encode())
        return h.hexdigest()[:16]

    def to(self, device: str | torch.device) -> ReIQA:
        device = torch.device(device)
        if self.backend != "torch" and device.type != "cpu":
            raise ValueError(
                f"the {self.backend} backend runs on the CPU; load with backend='torch' for {device}"
            )
        self.device = device
        self.features = self.features.to(self.device)
        return self

    @property
    def backend(self) -> str:
        """The engine that runs the encoders: one of ``reiqa.backends.BACKENDS``."""
        return self.features.backend

    def with_backend(self, backend: str, *, onnx_dir: str | Path | None = None) -> ReIQA:
        """This model with its encoders run by ``backend`` (see ``reiqa.backends``), on the CPU;
        the ONNX graphs come from ``onnx_dir`` (``reiqa export``) or the cache. Same card; same
        model id for the float32 engines, whose scores differ only by the engine's arithmetic
        (1e-4), another for ``openvino-bf16``, whose scores move by up to a few points."""
        from reiqa.backends import use_backend

        if backend == self.backend:
            return self
        if self.backend != "torch":
            raise ValueError(f"this model already runs on {self.backend}; load it again for {backend}")
        features = use_backend(self.features.to("cpu"), backend, folder=Path(onnx_dir) if onnx_dir else None)
        other = ReIQA(features, self.regressor, self.card)
        other.device = torch.device("cpu")
        return other

    # -- scoring --------------------------------------------------------------------------------

    def score_tensor(self, images: Tensor) -> np.ndarray:
        """(3, H, W) or (N, 3, H, W) of one size, float in [0, 1] or uint8 -> (N,) float64 scores;
        checked as ``score`` checks tensors."""
        return self._score_checked(check_images(images))

    @torch.inference_mode()
    def _score_checked(self, images: Tensor) -> np.ndarray:
        """(N, 3, H, W) float32 in [0, 1] (``reiqa.io.check_images``) -> (N,) float64 scores."""
        opts = self.card.features
        capped = [cap_size(im, max_side=opts.max_side, min_side=opts.min_side) for im in images]
        return self.regressor.predict(encode(self.features, torch.stack(capped)))

    @torch.inference_mode()
    def score_images(self, images: Sequence[Tensor]) -> np.ndarray:
        """Scores of (3, H, W) float images in [0, 1] of any sizes, as ``load_image`` and
        ``decode_image`` give them; images of one size run through the encoders together, as in
        ``score_files``. (N,) float64, NaN where the model gave a non-finite score."""
        opts = self.card.features
        capped = [
            cap_size(check_images(im, f"image {i}")[0], max_side=opts.max_side, min_side=opts.min_side)
            for i, im in enumerate(images)
        ]
        rows = encode_mixed(self.features, list(enumerate(capped)), channels_last=True, amp="none")
        if not rows:
            return np.zeros(0)
        scores = self.regressor.predict(np.stack([rows[i] for i in range(len(capped))]))
        return np.where(np.isfinite(scores), scores, np.nan)

    def score(
        self,
        inputs: str | os.PathLike | Sequence[str | os.PathLike] | Tensor | np.ndarray | Image.Image,
        *,
        batch_size: int = 8,
    ) -> float | np.ndarray:
        """A float for one image, an array for several; see the class for what is accepted."""
        if _is_path(inputs):
            return float(self._score_checked(check_images(load_image(inputs)))[0])
        if isinstance(inputs, Tensor):
            return self._one_or_many(check_images(inputs), inputs.ndim == 3)
        if isinstance(inputs, np.ndarray):
            tensor, single = array_to_tensor(inputs)
            return self._one_or_many(check_images(tensor, "the array"), single)
        if isinstance(inputs, Image.Image):
            return self._one_or_many(check_images(to_tensor(inputs), "the PIL image"), True)
        if isinstance(inputs, list | tuple):
            wrong = next((p for p in inputs if not _is_path(p)), None)
            if wrong is not None:
                raise TypeError(
                    f"a list must hold paths (str or Path), got a {type(wrong).__name__}; stack tensors "
                    "or arrays into one (N, 3, H, W) batch"
                )
            records = list(self.score_files(inputs, batch_size=batch_size))
            return np.array([math.nan if r.score is None else r.score for r in records])
        raise TypeError(f"cannot score a {type(inputs).__name__}; expected {ACCEPTED}")

    def _one_or_many(self, images: Tensor, single: bool) -> float | np.ndarray:
        out = self._score_checked(images)
        return float(out[0]) if single else out

    def score_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 8,
        workers: int = 0,
        progress: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Iterator[ScoreRecord]:
        """One ScoreRecord per path, in order (see ``reiqa.features.iter_features``). Files over
        ``max_pixels`` (width x height, checked before decoding) are refused."""
        for rows in iter_features(
            self.features,
            paths,
            options=self.card.features,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            max_pixels=max_pixels,
        ):
            good = [r for r in rows if r.features is not None]
            values = self.regressor.predict(np.stack([r.features for r in good])) if good else []
            scores = {r.index: float(v) for r, v in zip(good, values, strict=True)}
            for r in rows:
                yield scored_record(str(paths[r.index]), scores.get(r.index), r.error)

    # -- storage --------------------------------------------------------------------------------

    def save(self, directory: str | Path, *, half: bool = True) -> Path:
        """Write the bundle; ``half`` stores the encoder weights as float16."""
        if self.backend != "torch":
            raise ValueError(
                f"a model on the {self.backend} backend has no torch weights to save; save the torch one"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            backbone = getattr(self.features, role)
            if backbone is None:
                continue
            state = {
                k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
                for k, v in backbone.state_dict().items()
            }
            save_file(state, str(directory / getattr(self.card, role).file))
        self.regressor.save(directory)
        tmp = directory / ".model.json.tmp"
        tmp.write_text(json.dumps(self.card.to_dict(), indent=2), encoding="utf-8")
        os.replace(tmp, directory / "model.json")
        return directory


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
    score: ScoreSpec = ScoreSpec(),
    features: FeatureOptions | None = None,
) -> ReIQA:
    """A model from backbones and a fitted regressor (``save`` writes it as a folder)."""
    features = features or FeatureOptions()
    card = ModelCard(
        name=name,
        quality=EncoderSpec(quality_arch or "", quality_norm, "quality.safetensors") if quality else None,
        content=EncoderSpec(content_arch or "", content_norm, "content.safetensors") if content else None,
        score=score,
        features=features,
    )
    net = FeatureModel(
        quality, content, compat=features.compat, quality_norm=quality_norm, content_norm=content_norm
    )
    _check_width(net, regressor, "assemble", "fit it on features of the same encoders")
    return ReIQA(net, regressor, card)


def load(
    path: str | Path | None = None, *, backend: str = "torch", device: str | torch.device | None = None
) -> ReIQA:
    """The embedded default model (no argument or 'default'), or a bundle folder, on ``device``
    (default: the CPU); ``backend`` runs the encoders on another engine (``ReIQA.with_backend``,
    always on the CPU), 'auto' as ``reiqa.backends.choose_backend`` picks it for a long-lived
    model."""
    model = _load(path)
    if backend == "auto":
        from reiqa.backends import choose_backend

        backend = choose_backend(backend, device=torch.device(device or "cpu"))
    if backend != "torch":
        return model.with_backend(backend)
    return model if device is None else model.to(device)


def _load(path: str | Path | None) -> ReIQA:
    if path is None or str(path) == "default":
        root = resources.files("reiqa") / "weights" / "default"
        if not root.joinpath("model.json").is_file():
            raise ModelError(
                "this build of reiqa ships no embedded default model yet; "
                "pass a bundle folder: reiqa.load('path/to/model')"
            )
        with resources.as_file(root) as folder:
            return _load_dir(Path(folder))
    return _load_dir(Path(path))


def _load_backbone(directory: Path, spec: EncoderSpec, role: str) -> torch.nn.Module:
    """The ``role`` encoder: its weights file readable, every tensor finite and of the shape and
    kind (float or integer) that ``spec.arch`` has."""
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


def _load_regressor(directory: Path) -> QualityRegressor:
    for name in ("regressor.json", "regressor.safetensors"):
        if not (directory / name).is_file():
            raise ModelError(f"{directory / name}: missing (a model needs regressor.json and .safetensors)")
    try:
        return QualityRegressor.load(directory)
    except RegressorError as exc:  # its message starts with the file
        raise ModelError(str(exc)) from exc


def _load_dir(directory: Path) -> ReIQA:
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: not a reiqa model (no model.json)")
    card = ModelCard.read(meta_path)
    regressor = _load_regressor(directory)  # small: its errors come before the encoders are built
    encoders = {
        role: _load_backbone(directory, getattr(card, role), role) if getattr(card, role) else None
        for role in ROLES
    }
    norms = {
        role: getattr(card, role).input_norm if getattr(card, role) else DEFAULT_NORMS[role] for role in ROLES
    }
    features = FeatureModel(
        encoders["quality"],
        encoders["content"],
        compat=card.features.compat,
        quality_norm=norms["quality"],
        content_norm=norms["content"],
    )
    _check_width(
        features, regressor, directory / "regressor.safetensors", "the bundle's files do not belong together"
    )
    return ReIQA(features, regressor, card)


def _encoder_from_file(path: Path, role: str) -> tuple[torch.nn.Module, str, str]:
    """(backbone, arch, input_norm) of our encoder.json/.safetensors, or of an official ResNet-50
    .pth release (whose input normalisation is the role's default)."""
    if path.suffix in (".pth", ".pt", ".tar"):
        return import_official(path, arch="resnet50")[0], "resnet50", DEFAULT_NORMS[role]
    backbone, meta = load_encoder(path)
    return backbone, meta["arch"], meta.get("input_norm", DEFAULT_NORMS[role])


def _source_name(provenance: object) -> str | None:
    """The scores' provenance as the card shows it: a file name with its hash (``reiqa fit``
    records both), or the file name of an older regressor's path."""
    if isinstance(provenance, dict):
        return f"{provenance.get('file')} (sha256 {str(provenance.get('sha256'))[:16]})"
    return Path(provenance).name if isinstance(provenance, str) else None


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
    info = regressor.info
    score_range = info.get("score_range")
    model = assemble(
        q,
        c,
        regressor,
        quality_arch=q_arch,
        content_arch=c_arch,
        quality_norm=q_norm,
        content_norm=c_norm,
        name=name,
        score=ScoreSpec(tuple(score_range) if score_range else None, True, _source_name(info.get("scores"))),
        features=options,
    )
    expected = info.get("model_id")
    if expected and model.features.model_id(max_side=options.max_side, min_side=options.min_side) != expected:
        raise ModelError(
            f"{regressor_dir}: the regressor was fitted on features of other encoder weights or other "
            f"feature options (max_side, min_side, compat) than these; extract the features with the "
            f"same encoders and options, then fit again"
        )
    return model.save(out, half=half)
