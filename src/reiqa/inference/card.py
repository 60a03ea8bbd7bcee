"""The model card (``model.json``): which encoders a model folder holds, what its scores mean and
how images are prepared for it. Checked field by field when read: a problem is a ``ModelError``
whose message starts with the file and names the field."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reiqa.errors import ConfigError, ModelError
from reiqa.features import FeatureOptions
from reiqa.models.backbones import BACKBONES, NORMS
from reiqa.schema import from_dict, read_json

__all__ = ["DEFAULT_NORMS", "FORMAT", "ROLES", "EncoderSpec", "ModelCard", "ScoreSpec"]

FORMAT = "reiqa-model-1"
ROLES = ("quality", "content")
DEFAULT_NORMS = {"quality": "none", "content": "imagenet"}


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder of a model folder: its architecture, the input normalisation it was trained
    with, and its weights file inside the folder (a plain file name)."""

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
        spec = from_dict(cls, _with_role_defaults(raw, role), role)
        spec.check(role)
        return spec


def _with_role_defaults(raw: object, role: str) -> object:
    """An encoder's section with the defaults of its role filled in (they depend on the role, so
    the dataclass cannot hold them)."""
    if not isinstance(raw, dict):
        return raw
    return {"input_norm": DEFAULT_NORMS[role], "file": f"{role}.safetensors", **raw}


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
        return from_dict(cls, raw, "score")


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
            spec = self.encoder(role)
            if spec is not None:
                spec.check(role)

    def encoder(self, role: str) -> EncoderSpec | None:
        """The spec of the ``role`` encoder ('quality' or 'content'), None when it has none."""
        return self.quality if role == "quality" else self.content

    def input_norm(self, role: str) -> str:
        """The ``role`` encoder's input normalisation (the role's default when it has none)."""
        spec = self.encoder(role)
        return spec.input_norm if spec is not None else DEFAULT_NORMS[role]

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
        if "format" not in raw:
            raise ConfigError(f"format is missing, expected {FORMAT!r}")
        filled = {**raw, **{r: _with_role_defaults(raw[r], r) for r in ROLES if raw.get(r) is not None}}
        return from_dict(cls, filled)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        raw = read_json(path, "the model card", ModelError)
        try:
            return cls.from_dict(raw)
        except (ConfigError, TypeError) as exc:
            raise ModelError(f"{path}: {exc}") from exc
