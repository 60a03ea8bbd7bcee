"""The recipe of a fine-tuning run: ``FinetuneConfig``, a frozen dataclass checked when built, read
and written as JSON with ``reiqa.schema`` (``finetune.json`` in the run folder, and in every
checkpoint). ``config_from_options`` builds one from the command line's options."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reiqa import schema
from reiqa.errors import ConfigError
from reiqa.train import config as train_config

__all__ = [
    "CSV",
    "RUN_FIELDS",
    "Database",
    "FinetuneConfig",
    "config_from_options",
    "parse_database",
    "parse_override",
]

#: the database name that reads a user's own CSV file (``reiqa.datasets.load_csv``)
CSV = "csv"
ROLES = ("quality", "content")
AMPS = ("none", "bf16", "fp16")
#: fields that say how long or how a run goes, not what it computes: a run may be resumed with
#: other values
RUN_FIELDS = ("max_steps", "time_limit", "workers", "log_every", "checkpoint_every")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class Database:
    """One labelled database: a loader of ``reiqa.datasets`` (``clive``, ``biq2021``, ...) or
    ``csv`` (then ``root`` is the CSV file, image names relative to its folder), and its folder."""

    name: str
    root: str

    def __post_init__(self) -> None:
        _check(bool(self.name.strip()), "databases: a database needs a name")
        _check(bool(self.root.strip()), f"databases: {self.name} needs a folder (NAME=ROOT)")


@dataclass(frozen=True)
class FinetuneConfig:
    """What a fine-tuning run computes (see ``reiqa.train.finetune``).

    Attributes:
        model: the starting model folder ('default': the embedded model).
        databases: the labelled databases; batches never mix them. The first one's scale is the
            output's: the starting model should predict on it (the default model: CLIVE).
        val_fraction, val: the part of each database's training rows held out for validation:
            a fraction, or ``val`` rows (when given).
        crop, batch_size: training crops (side in pixels) and crops per step.
        epochs, max_steps, time_limit: the schedule's length in epochs; stop earlier after
            ``max_steps`` steps or ``time_limit`` minutes (with a checkpoint).
        lr_encoder, lr_head, weight_decay, warmup, min_lr_ratio: AdamW, peak learning rates of the
            encoders and of the linear head, cosine decay after a linear warm-up (a fraction of
            the steps), down to ``min_lr_ratio`` of the peaks.
        freeze: encoders ('quality', 'content') kept as they are.
        bn: 'frozen' (BatchNorm in eval mode: the running statistics stay) or 'train'.
        rank_weight, rank_margin: the pairwise hinge within a batch (margin in z units).
        mse_weight: the squared error on the batch's z-scores.
        degrade_weight, degrade_images, degrade_margin: the hinge asking a crop to score above
            its degraded copy by the margin (z units), on ``degrade_images`` crops per step.
        seed, amp, channels_last: random draws; autocast ('bf16', 'fp16' with a grad scaler);
            the memory layout of convolutions.
        val_at_start: validate the starting model first (the best checkpoint is then never worse
            than it on the validation rows).
        half: store the output's encoder weights as float16.
        workers, log_every, checkpoint_every: decoding processes; steps between log records and
            between checkpoints (one is also written at every epoch's end and at the stop).
    """

    model: str = "default"
    databases: tuple[Database, ...] = ()
    val_fraction: float = 0.2
    val: int | None = None
    crop: int = 320
    batch_size: int = 8
    epochs: int = 3
    max_steps: int | None = None
    time_limit: float | None = None
    lr_encoder: float = 1e-5
    lr_head: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    min_lr_ratio: float = 0.01
    freeze: tuple[str, ...] = ()
    bn: str = "frozen"
    rank_weight: float = 1.0
    rank_margin: float = 0.5
    mse_weight: float = 1.0
    degrade_weight: float = 1.0
    degrade_images: int = 2
    degrade_margin: float = 0.2
    seed: int = 0
    amp: str = "none"
    channels_last: bool = True
    val_at_start: bool = True
    half: bool = True
    workers: int = 2
    log_every: int = 5
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        _check(len(self.databases) >= 1, "databases: give at least one (--db NAME=ROOT)")
        _check(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        _check(self.val is None or self.val >= 2, f"val must be at least 2 rows, got {self.val}")
        _check(self.crop >= 32, f"crop must be at least 32 pixels, got {self.crop}")
        _check(self.batch_size >= 2, f"batch_size must be at least 2 (pairs), got {self.batch_size}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        _check(
            self.time_limit is None or self.time_limit > 0, f"time_limit must be > 0, got {self.time_limit}"
        )
        for name in ("lr_encoder", "lr_head"):
            _check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.warmup < 1, f"warmup must be in [0, 1), got {self.warmup}")
        _check(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        bad = sorted(set(self.freeze) - set(ROLES))
        _check(not bad, f"freeze: unknown encoder(s) {bad}; one of {list(ROLES)}")
        _check(self.bn in ("frozen", "train"), f"bn must be 'frozen' or 'train', got {self.bn!r}")
        for name in ("rank_weight", "rank_margin", "mse_weight", "degrade_weight", "degrade_margin"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(
            self.rank_weight + self.mse_weight > 0,
            "rank_weight and mse_weight cannot both be 0: nothing to fit",
        )
        _check(
            0 <= self.degrade_images <= self.batch_size,
            f"degrade_images must be in [0, batch_size], got {self.degrade_images}",
        )
        _check(self.amp in AMPS, f"amp must be one of {list(AMPS)}, got {self.amp!r}")
        _check(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        _check(
            self.log_every >= 1 and self.checkpoint_every >= 1, "log_every and checkpoint_every must be >= 1"
        )

    def to_dict(self) -> dict[str, Any]:
        return schema.to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: object) -> FinetuneConfig:
        return schema.from_dict(cls, raw)

    @classmethod
    def from_json(cls, path: str | Path) -> FinetuneConfig:
        path = Path(path)
        raw = schema.read_json(path, "the fine-tuning config")
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def replace(self, **changes: Any) -> FinetuneConfig:
        """A copy with fields changed (range-checked like a new config)."""
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:  # an unknown field
            raise ConfigError(f"{exc}; fields: {[f.name for f in dataclasses.fields(self)]}") from exc

    def differences(self, other: FinetuneConfig) -> list[str]:
        """'field: this -> other' for each field that differs, those of ``RUN_FIELDS`` aside."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in RUN_FIELDS and a[k] != b[k]]


def parse_database(text: str) -> Database:
    """'NAME=ROOT' (``--db clive=/data/clive``) as a Database."""
    name, sep, root = text.partition("=")
    if not sep or not name.strip() or not root.strip():
        raise ConfigError(
            f"--db {text!r}: give NAME=ROOT, e.g. --db clive=/data/clive or --db csv=scores.csv"
        )
    return Database(name.strip(), root.strip())


def parse_override(text: str) -> tuple[str, Any]:
    """'field=value' with a JSON value (bare words are taken as strings), read as ``reiqa
    pretrain --set`` reads its overrides."""
    return train_config.parse_override(text, what="--set", form="FIELD=VALUE", example="--set mse_weight=0.5")


def config_from_options(
    databases: Sequence[str], *, overrides: Sequence[str] = (), **fields: Any
) -> FinetuneConfig:
    """The config of a command line: ``--db NAME=ROOT`` values, options given by name (None:
    the default) and ``--set field=value`` overrides (JSON values, bare words as strings)."""
    given = {k: v for k, v in fields.items() if v is not None}
    if "freeze" in given:
        given["freeze"] = tuple(given["freeze"])
    dbs = [schema.to_dict(parse_database(d)) for d in databases]
    raw = {**given, "databases": dbs}
    for text in overrides:
        key, value = parse_override(text)
        raw[key] = value
    try:
        return FinetuneConfig.from_dict(raw)
    except TypeError as exc:  # a value of the wrong type reached a range check
        raise ConfigError(str(exc)) from exc
