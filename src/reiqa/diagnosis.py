"""The diagnosis head: what is most likely wrong with a photo, read from the model's own features.

Standardisation, then a multinomial logistic regression over the issues of
``reiqa.distortions.issues`` (``none``, ``blur``, ``noise``, ...) and, per issue, a linear
regression of its severity, both on the columns of some feature blocks (``blocks``, e.g. the
quality encoder's two). The severity of an image is the issues' severities weighted by their
probabilities, clipped to [0, 1] (how strong a blur is and how strong noise is are read from
different directions of the features).

The head reads images as it was fitted: crops of ``crop`` px. Pooled features depend on the size
of the input (the borders weigh more in a small one), so a head fitted on 224 px crops would
misread the features of a whole 1024 px photo; an image is therefore cut into tiles of ``crop`` px
(:func:`tile_positions`), the head runs on each, and the image's probabilities and severity are
the tiles' means (``reiqa.inference.pipeline.diagnose_batch``; its score is the whole image's).

A model folder holds the head beside its regressor, without pickle:

- ``diagnosis.json``: the classes, the blocks it reads, the layout of the features it was fitted
  on (every block of the model, with its width: checked against the model when loaded), the
  side of the crops it reads, and how it was fitted and measured (``fit``);
- ``diagnosis.safetensors``: ``mean``, ``scale`` (D,), ``coef`` (K, D), ``intercept`` (K,),
  ``severity_coef`` (K, D), ``severity_intercept`` (K,).

Predicting needs numpy alone; fitting one (scikit-learn, renderings of the distortion engine) is
``reiqa.diagnose.fit``, which scoring never imports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reiqa import schema
from reiqa.atomic import atomic_path, write_json_atomic
from reiqa.errors import ConfigError, ModelError

__all__ = [
    "FILES",
    "FORMAT",
    "MAX_TILES",
    "DiagnosisHead",
    "DiagnosisRecord",
    "FitRecord",
    "has_head",
    "tile_positions",
]

FORMAT = "reiqa-diagnosis-1"
FILES = ("diagnosis.json", "diagnosis.safetensors")
#: at most this many tiles along a side (a photo scored at full size is sampled, not covered)
MAX_TILES = 6


def tile_positions(length: int, side: int) -> tuple[int, ...]:
    """Start positions of tiles of ``side`` px along ``length`` px: enough to cover it (at most
    :data:`MAX_TILES`), evenly spread, the first at 0 and the last at the end."""
    if side >= length:
        return (0,)
    count = min(MAX_TILES, -(-length // side))
    return tuple(round(float(v)) for v in np.linspace(0, length - side, count))


@dataclass(frozen=True)
class DiagnosisRecord:
    """The diagnosis of one image, or the reason it has none: a ``ScoreRecord`` (path, score,
    error) with the most likely ``issue``, its ``severity`` in [0, 1] and the probability of
    every issue (they sum to 1). A file that cannot be read has only ``path`` and ``error``."""

    path: str
    score: float | None
    error: str | None
    issue: str | None = None
    severity: float | None = None
    probabilities: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the record (``probabilities`` null for a failure)."""
        return {
            "path": self.path,
            "score": self.score,
            "issue": self.issue,
            "severity": self.severity,
            "probabilities": self.probabilities,
            "error": self.error,
        }


@dataclass(frozen=True)
class FitRecord:
    """How a head was fitted and what it measured (``diagnosis.json``'s ``fit``).

    Attributes:
        photos, renderings: the training photos, and the renderings made of them.
        pristine: pristine crops per photo.
        seed: the seed of the crops and the distortions' random draws.
        C: the inverse strength of the logistic regression; severity_alpha: the severity
            ridges'.
        none_shift: what was added to the log-odds of ``none`` (``reiqa.diagnose.fit``).
        validation: metrics on photos held out of the fit of the chosen strengths.
        extra: other keys (the source of the photos, a note), kept and written back.
    """

    photos: int | None = None
    renderings: int | None = None
    pristine: int | None = None
    seed: int | None = None
    C: float | None = None
    severity_alpha: float | None = None
    none_shift: float | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Described:
    """The fields of a ``diagnosis.json``."""

    format: str
    classes: tuple[str, ...]
    blocks: tuple[str, ...]
    layout: tuple[tuple[str, int], ...]
    crop: int
    encoders_id: str | None = None
    fit: FitRecord = field(default_factory=FitRecord)
    extra: dict[str, Any] = field(default_factory=dict)


def has_head(directory: str | Path) -> bool:
    """Whether a model folder holds a diagnosis head (either of its files: a half-written head
    is then an error when it is loaded, never ignored)."""
    return any((Path(directory) / name).exists() for name in FILES)


class DiagnosisHead:
    """A fitted head. ``predict`` takes the model's full feature rows (``FeatureModel`` order) and
    reads its own blocks' columns.

    Args:
        classes: the issues, in the order of ``coef``'s rows (K).
        blocks: the feature blocks it reads, in order.
        layout: every block of the features it was fitted on, (name, width), in order.
        crop: the side (px) of the crops it was fitted on, and of the tiles it reads.
        mean, scale: (D,) standardisation of the selected columns (scale > 0).
        coef, intercept: (K, D) and (K,): the logistic regression on standardised columns.
        severity_coef, severity_intercept: (K, D) and (K,): each issue's severity regression.
        encoders_id: the feature ``model_id`` of the encoders it was fitted on (provenance).
        fit: how it was fitted and measured.
    """

    def __init__(
        self,
        *,
        classes: tuple[str, ...],
        blocks: tuple[str, ...],
        layout: tuple[tuple[str, int], ...],
        crop: int,
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        severity_coef: np.ndarray,
        severity_intercept: np.ndarray,
        encoders_id: str | None = None,
        fit: FitRecord | None = None,
    ) -> None:
        self.classes = tuple(classes)
        self.blocks = tuple(blocks)
        self.layout = tuple((str(n), int(w)) for n, w in layout)
        self.crop = crop
        self.mean, self.scale = _vector(mean, "mean"), _vector(scale, "scale")
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = _vector(intercept, "intercept")
        self.severity_coef = np.asarray(severity_coef, dtype=np.float64)
        self.severity_intercept = _vector(severity_intercept, "severity_intercept")
        self.encoders_id = encoders_id
        self.fit = fit or FitRecord()
        self._columns = _columns(self.layout, self.blocks)
        self._check()

    def _check(self) -> None:
        k, d = len(self.classes), len(self._columns)
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 1:
            raise ConfigError(f"crop must be a positive number of pixels, got {self.crop!r}")
        if k < 2 or len(set(self.classes)) != k:
            raise ConfigError(f"classes must be 2 or more distinct names, got {list(self.classes)}")
        shapes = {
            "mean": (self.mean.shape, (d,)),
            "scale": (self.scale.shape, (d,)),
            "coef": (self.coef.shape, (k, d)),
            "intercept": (self.intercept.shape, (k,)),
            "severity_coef": (self.severity_coef.shape, (k, d)),
            "severity_intercept": (self.severity_intercept.shape, (k,)),
        }
        for name, (got, wanted) in shapes.items():
            if got != wanted:
                raise ConfigError(f"{name} must have shape {wanted} ({k} classes, {d} columns), got {got}")
        arrays = (
            self.mean,
            self.scale,
            self.coef,
            self.intercept,
            self.severity_coef,
            self.severity_intercept,
        )
        if not all(np.isfinite(a).all() for a in arrays):
            raise ConfigError("the head's numbers contain NaN or infinity")
        if (self.scale <= 0).any():
            raise ConfigError("scale must be > 0 (it divides the features)")

    @property
    def width(self) -> int:
        """The width of the feature rows it takes (every block of its layout)."""
        return sum(w for _, w in self.layout)

    def predict(
        self, features: np.ndarray, *, layout: tuple[tuple[str, int], ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """features: (N, W) float rows laid out as ``layout`` (default: the model's, ``layout``;
        any layout that holds the head's blocks, e.g. that of the encoders it reads alone).
        Returns (probabilities (N, K), each row summing to 1, in the order of ``classes``;
        severity (N,) in [0, 1])."""
        layout = self.layout if layout is None else tuple(layout)
        widths = dict(layout)
        if any(widths.get(b) != dict(self.layout)[b] for b in self.blocks):
            raise ModelError(f"the diagnosis head reads blocks {self.blocks} of {self.layout}, got {layout}")
        columns = self._columns if layout == self.layout else _columns(layout, self.blocks)
        x = np.asarray(features, dtype=np.float64)
        width = sum(widths.values())
        if x.ndim != 2 or x.shape[1] != width:
            raise ModelError(f"the diagnosis head takes rows of {width} features, got shape {tuple(x.shape)}")
        z = (x[:, columns] - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)  # exp never overflows
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        severities = z @ self.severity_coef.T + self.severity_intercept  # (N, K): each issue's
        severity = np.clip((probabilities * severities).sum(axis=1), 0.0, 1.0)
        return probabilities, severity

    def summary(self) -> dict[str, Any]:
        """What a user reads about the head (``GET /model`` of the service): its issues, the
        blocks it reads, and what it measured on held-out photos."""
        shown = ("photos", "renderings", "accuracy", "balanced_accuracy", "by_level", "severity_mae")
        validation = {k: v for k, v in self.fit.validation.items() if k in shown}
        return {
            "classes": list(self.classes),
            "blocks": list(self.blocks),
            "crop": self.crop,
            "validation": validation,
        }

    # -- storage (no pickle) ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``diagnosis.json`` and ``diagnosis.safetensors`` into ``directory``, each whole."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        meta = {
            "format": FORMAT,
            "classes": list(self.classes),
            "blocks": list(self.blocks),
            "layout": [list(b) for b in self.layout],
            "crop": self.crop,
            "encoders_id": self.encoders_id,
            "fit": schema.to_dict(self.fit),
        }
        _described(json.loads(json.dumps(meta)), directory / FILES[0])  # what is written reads back
        arrays = {
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "severity_coef": self.severity_coef,
            "severity_intercept": self.severity_intercept,
        }
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / FILES[1]) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
        write_json_atomic(directory / FILES[0], meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DiagnosisHead:
        """Read a model folder's head; a missing, unreadable or inconsistent file is a ModelError
        naming it."""
        directory = Path(directory)
        meta_path, weights_path = (directory / name for name in FILES)
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise ModelError(f"{path}: missing (a diagnosis head needs {' and '.join(FILES)})")
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{meta_path}: cannot read the diagnosis head ({exc})") from exc
        meta = _described(raw, meta_path)
        arrays = _read_arrays(weights_path)
        try:
            return cls(
                classes=meta.classes,
                blocks=meta.blocks,
                layout=meta.layout,
                crop=meta.crop,
                encoders_id=meta.encoders_id,
                fit=meta.fit,
                **arrays,
            )
        except ConfigError as exc:
            raise ModelError(f"{weights_path}: {exc}") from exc


def _vector(value: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _columns(layout: tuple[tuple[str, int], ...], blocks: tuple[str, ...]) -> np.ndarray:
    """The column indices of ``blocks`` in rows laid out as ``layout``."""
    starts, pos = {}, 0
    for name, width in layout:
        starts[name] = (pos, pos + width)
        pos += width
    unknown = [b for b in blocks if b not in starts]
    if unknown or not blocks:
        raise ConfigError(f"blocks {list(blocks)} must be some of the layout's {list(starts)}")
    return np.concatenate([np.arange(*starts[b]) for b in blocks])


def _described(raw: object, path: Path) -> _Described:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelError(f"{path}: not a reiqa diagnosis head (format {FORMAT!r} expected)")
    try:
        return schema.from_dict(_Described, raw)
    except ConfigError as exc:
        raise ModelError(f"{path}: {exc}") from exc


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for torn files
        raise ModelError(f"{path}: unreadable safetensors file ({exc})") from exc
    wanted = ("mean", "scale", "coef", "intercept", "severity_coef", "severity_intercept")
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise ModelError(f"{path}: tensor(s) {missing} missing (has {sorted(arrays)})")
    return {k: arrays[k] for k in wanted}
