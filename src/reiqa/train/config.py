"""Training configuration: frozen dataclasses, nested all the way down (the view configs of
``reiqa.views`` live inside ``data``), every field checked when the config is built, stored as
JSON in every checkpoint. Presets are named constants; ``configs/*.json`` are the same presets as
files a user can copy and edit.

Layout (JSON)::

    {"encoder": ..., "batch_size": ..., ...,
     "data":  {"views": "quality" | "content", "quality": {QualityViewConfig},
               "content": {ContentViewConfig}, "workers", "views_on", "max_side"},
     "model": {...}, "moco": {...}, "optim": {...}}

A config written before the view configs were nested (``data.patch_size``, ``data.n_aug``, ...,
``data.content_size`` at the top of ``data``) is converted on reading, with a warning that says
how to update the file.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reiqa import schema
from reiqa.errors import ConfigError, UnknownNameError
from reiqa.models.backbones import BACKBONES, NORMS
from reiqa.models.moco import NEGATIVES
from reiqa.views import ContentViewConfig, QualityViewConfig

__all__ = [
    "CONTENT",
    "CONTENT_CPU_SMALL",
    "CPU_SMALL",
    "PAPER",
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "MocoConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "effective_lr",
    "load_config",
    "preset",
]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    """Where training views come from. ``views`` picks the sampler: 'quality' uses
    ``reiqa.views.QualityViews(quality)``, 'content' ``reiqa.views.ContentViews(content)``; the
    other section is kept (and checked) but unused."""

    views: str = "quality"
    quality: QualityViewConfig = field(default_factory=QualityViewConfig)
    content: ContentViewConfig = field(default_factory=ContentViewConfig)
    workers: int = 2
    # where views are made: 'workers' (DataLoader processes, CPU), 'device' (the training
    # device, batched), or 'auto' (workers on CPU, device on CUDA)
    views_on: str = "auto"
    max_side: int | None = 1024  # sources are downscaled (antialiased) to this longer side first

    def __post_init__(self) -> None:
        _check(
            self.views in ("quality", "content"),
            f"data.views must be 'quality' or 'content', got {self.views!r}",
        )
        _check(self.workers >= 0, f"data.workers must be >= 0, got {self.workers}")
        _check(self.views_on in ("auto", "workers", "device"), f"data.views_on: unknown {self.views_on!r}")
        if self.views == "quality":
            patch = self.quality.patch_size
            _check(
                self.max_side is None or self.max_side >= 2 * patch,
                f"data.max_side must be None or >= 2 * data.quality.patch_size ({2 * patch}), "
                f"got {self.max_side}",
            )
        else:
            _check(
                self.max_side is None or self.max_side >= 1,
                f"data.max_side must be >= 1, got {self.max_side}",
            )


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet50"
    proj_hidden: int | None = None  # None: the backbone's feature dimension (official: 2048)
    proj_dim: int = 128
    input_norm: str = "none"  # 'none' (quality encoder) or 'imagenet' (content encoder)
    channels_last: bool = True
    # warm start: a reiqa encoder (.json/.safetensors, e.g. from `reiqa import-encoder`) whose
    # backbone weights replace the random ones of the query and key encoders before step 0
    init: str | None = None

    def __post_init__(self) -> None:
        _check(self.arch in BACKBONES, f"model.arch: unknown {self.arch!r}; one of {sorted(BACKBONES)}")
        _check(
            self.input_norm in NORMS, f"model.input_norm: unknown {self.input_norm!r}; one of {sorted(NORMS)}"
        )
        _check(self.proj_dim > 0, f"model.proj_dim must be > 0, got {self.proj_dim}")
        _check(
            self.proj_hidden is None or self.proj_hidden > 0,
            f"model.proj_hidden must be None or > 0, got {self.proj_hidden}",
        )
        _check(self.init is None or bool(self.init.strip()), "model.init must be None or a file path")


@dataclass(frozen=True)
class MocoConfig:
    queue_size: int = 65536
    temperature: float = 0.2
    momentum: float = 0.999
    negatives: str = "queue"  # 'queue' (official), 'queue+batch', 'queue+same-image' (paper text)
    bn: str = "shuffle"  # 'shuffle' (MoCo), 'sync' (SyncBN under DDP), 'plain'
    bn_groups: int = 4  # single-process shuffle-BN emulation: key batch split in this many groups

    def __post_init__(self) -> None:
        _check(self.queue_size >= 1, f"moco.queue_size must be >= 1, got {self.queue_size}")
        _check(self.temperature > 0, f"moco.temperature must be > 0, got {self.temperature}")
        _check(0 <= self.momentum < 1, f"moco.momentum must be in [0, 1), got {self.momentum}")
        _check(
            self.negatives in NEGATIVES, f"moco.negatives must be one of {NEGATIVES}, got {self.negatives!r}"
        )
        _check(self.bn in ("shuffle", "sync", "plain"), f"moco.bn: unknown {self.bn!r}")
        _check(self.bn_groups >= 1, f"moco.bn_groups must be >= 1, got {self.bn_groups}")


@dataclass(frozen=True)
class OptimConfig:
    name: str = "lars"
    # learning rate per 64 instances-per-scale: lr = base_lr * batch_size * n_scale / 64 (the
    # paper's "0.6 with batch scaling"; 0.6 * 630 * 2 / 64 = 11.8, the README's 12)
    base_lr: float = 0.6
    weight_decay: float = 1e-4
    momentum: float = 0.9
    epochs: int = 40
    warmup_epochs: float = 5
    schedule: str = "cosine"  # 'cosine' (per iteration) or 'official' (per-epoch, PyContrast)
    min_lr_ratio: float = 0.001
    clip_grad_norm: float | None = None

    def __post_init__(self) -> None:
        _check(self.name in ("lars", "sgd"), f"optim.name must be 'lars' or 'sgd', got {self.name!r}")
        _check(self.base_lr > 0, f"optim.base_lr must be > 0, got {self.base_lr}")
        _check(self.epochs >= 1, f"optim.epochs must be >= 1, got {self.epochs}")
        _check(
            0 <= self.warmup_epochs <= self.epochs,
            f"optim.warmup_epochs must be in [0, epochs], got {self.warmup_epochs}",
        )
        _check(self.schedule in ("cosine", "official"), f"optim.schedule: unknown {self.schedule!r}")
        _check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.momentum < 1, f"optim.momentum must be in [0, 1), got {self.momentum}")
        _check(0 <= self.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _check(
            self.clip_grad_norm is None or self.clip_grad_norm > 0,
            f"optim.clip_grad_norm must be None or > 0, got {self.clip_grad_norm}",
        )


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = "quality"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    moco: MocoConfig = field(default_factory=MocoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 630  # images per step, over all processes
    seed: int = 0
    amp: str = "none"  # 'none', 'bf16', 'fp16'
    log_every: int = 10  # steps
    checkpoint_every: int = 200  # steps; a checkpoint is also written at the end of each epoch
    max_steps: int | None = None  # stop early (tests, smoke runs); the schedule keeps its length

    def __post_init__(self) -> None:
        _check(
            self.encoder in ("quality", "content"),
            f"encoder must be 'quality' or 'content', got {self.encoder!r}",
        )
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(
            self.amp in ("none", "bf16", "fp16"), f"amp must be 'none', 'bf16' or 'fp16', got {self.amp!r}"
        )
        _check(
            self.checkpoint_every >= 1 and self.log_every >= 1, "log_every and checkpoint_every must be >= 1"
        )
        _check(
            self.max_steps is None or self.max_steps >= 1,
            f"max_steps must be None or >= 1, got {self.max_steps}",
        )

    # -- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a (possibly partial) dict; unknown keys raise ConfigError naming them. A dict
        in the layout before the view configs were nested is converted (see the module doc)."""
        try:
            return schema.from_dict(cls, _convert_old_layout(raw, source))
        except TypeError as exc:  # a value of the wrong type reached a range check
            raise ConfigError(str(exc)) from exc

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        raw = schema.read_json(path, "the config")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a config is a JSON object, got {type(raw).__name__}")
        try:
            return cls.from_dict(raw, source=str(path))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with fields changed, by dotted path: 'seed', 'optim.epochs',
        'data.quality.patch_size'. The copy is checked like any new config."""
        raw = self.to_dict()
        for key, value in changes.items():
            *sections, name = key.split(".")
            node = raw
            for i, section in enumerate(sections):
                if not isinstance(node.get(section), dict):
                    raise ConfigError(f"{key}: {'.'.join(sections[: i + 1])} is not a config section")
                node = node[section]
            if name not in node:
                raise ConfigError(f"{key}: unknown field{_moved_hint(key)}; fields here: {sorted(node)}")
            node[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return TrainConfig.from_dict(raw)


#: fields of ``data`` that moved into ``data.quality`` (and ``content_size`` into ``data.content.size``)
_OLD_DATA_FIELDS = {f.name for f in dataclasses.fields(QualityViewConfig)} | {"content_size"}


def _moved_hint(key: str) -> str:
    section, _, name = key.partition(".")
    if section != "data" or name not in _OLD_DATA_FIELDS:
        return ""
    return (
        " (it moved: use data.content.size)"
        if name == "content_size"
        else f" (it moved: use data.quality.{name})"
    )


def _convert_old_layout(raw: dict[str, Any], source: str) -> dict[str, Any]:
    data = raw.get("data")
    if not isinstance(data, dict) or not _OLD_DATA_FIELDS & set(data):
        return raw
    data = dict(data)
    quality = {k: data.pop(k) for k in list(data) if k in _OLD_DATA_FIELDS and k != "content_size"}
    content = {"size": data.pop("content_size")} if "content_size" in data else {}
    data["quality"] = {**quality, **data.get("quality", {})}
    data["content"] = {**content, **data.get("content", {})}
    warnings.warn(
        f"{source}: old config layout (view fields at the top of 'data') read and converted; move "
        "patch_size, n_aug, n_scale, ... into data.quality and content_size into data.content.size "
        "(write the converted file with TrainConfig.to_json)",
        UserWarning,
        stacklevel=3,
    )
    return {**raw, "data": data}


def effective_lr(cfg: TrainConfig) -> float:
    """The peak learning rate: base_lr * images per step * scales / 64."""
    scales = cfg.data.quality.n_scale if cfg.data.views == "quality" else 1
    return cfg.optim.base_lr * cfg.batch_size * scales / 64


# -- presets ----------------------------------------------------------------------------------

#: The official README command (docs/method.md §2.6): ResNet-50, 630 images x 24 instances per step,
#: LARS lr 12 (0.6 x 630 x 2 / 64 = 11.8), 40 epochs, 5 warm-up epochs, queue 65536, T 0.2.
PAPER = TrainConfig(
    encoder="quality",
    data=DataConfig(
        quality=QualityViewConfig(patch_size=160, n_aug=11, n_scale=2, n_distortions=1),
        workers=8,
        max_side=None,
    ),
    model=ModelConfig(arch="resnet50"),
    moco=MocoConfig(queue_size=65536, temperature=0.2, momentum=0.999, negatives="queue"),
    optim=OptimConfig(name="lars", base_lr=0.6, epochs=40, warmup_epochs=5),
    batch_size=630,
)

#: A quality encoder that trains on this project's 2-core CPU machine in about an hour on ~900
#: images: ResNet-18, 96 px crops, 5 distortions per image, 32 images (384 instances) per step.
#: Other distortions of the same image are negatives (the paper's description). LARS scales each
#: update by its trust ratio, so its learning rate does not follow the batch linearly: the
#: effective lr is 6 (the official 12 halved for the 20x smaller batch), not 0.6 x 64 / 64.
CPU_SMALL = TrainConfig(
    encoder="quality",
    data=DataConfig(
        quality=QualityViewConfig(patch_size=96, n_aug=5, n_scale=2, margin=8), workers=1, max_side=768
    ),
    model=ModelConfig(arch="resnet18"),
    moco=MocoConfig(
        queue_size=8192, temperature=0.2, momentum=0.99, negatives="queue+same-image", bn_groups=4
    ),
    optim=OptimConfig(name="lars", base_lr=6.0, epochs=25, warmup_epochs=2),
    batch_size=32,
    log_every=5,
    checkpoint_every=50,
)

#: MoCo-v2 content encoder (PyContrast defaults, docs/method.md §3): SGD 0.03 for 256 images, 200 epochs.
CONTENT = TrainConfig(
    encoder="content",
    data=DataConfig(
        views="content",
        quality=QualityViewConfig(n_scale=1),
        content=ContentViewConfig(size=224),
        workers=8,
        max_side=None,
    ),
    model=ModelConfig(arch="resnet50", input_norm="imagenet"),
    moco=MocoConfig(queue_size=65536, temperature=0.2, momentum=0.999, negatives="queue"),
    optim=OptimConfig(
        name="sgd", base_lr=0.0075, weight_decay=1e-4, momentum=0.9, epochs=200, warmup_epochs=0
    ),
    batch_size=256,
)

#: The content recipe sized for the CPU machine: ResNet-18, 112 px views.
CONTENT_CPU_SMALL = CONTENT.replace(
    **{
        "data.content.size": 112,
        "data.workers": 1,
        "data.max_side": 768,
        "model.arch": "resnet18",
        "moco.queue_size": 4096,
        "moco.momentum": 0.99,
        "optim.epochs": 30,
        "optim.warmup_epochs": 2,
        "batch_size": 64,
        "log_every": 5,
        "checkpoint_every": 50,
    }
)

PRESETS: dict[str, TrainConfig] = {
    "paper": PAPER,
    "cpu-small": CPU_SMALL,
    "content": CONTENT,
    "content-cpu-small": CONTENT_CPU_SMALL,
}


def parse_override(
    text: str, *, what: str = "override", form: str = "KEY=VALUE", example: str = "optim.epochs=10"
) -> tuple[str, Any]:
    """'section.field=value' with a JSON value (bare words are taken as strings); ``what``,
    ``form`` and ``example`` word the error for the command that reads it."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {text!r} is not {form} (e.g. {example})")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def load_config(
    *,
    encoder: str = "quality",
    preset_name: str | None = None,
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """The config a command line asks for: a preset or a JSON file (not both), then overrides.
    Without either, the paper preset for the quality encoder and 'content' for the content one."""
    if preset_name is not None and path is not None:
        raise ConfigError("give a preset or a config file, not both")
    if path is not None:
        cfg = TrainConfig.from_json(path)
    else:
        cfg = preset(preset_name or ("paper" if encoder == "quality" else "content"))
    if cfg.encoder != encoder:
        raise ConfigError(f"the config trains the {cfg.encoder} encoder, but --encoder {encoder} was given")
    changes = dict(parse_override(o) for o in overrides)
    try:
        return cfg.replace(**changes) if changes else cfg
    except ConfigError as exc:
        raise ConfigError(f"--set {' '.join(overrides)}: {exc}") from exc


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        import difflib

        near = difflib.get_close_matches(name, list(PRESETS), n=3)
        raise UnknownNameError(f"unknown preset {name!r}; close: {near}; all: {sorted(PRESETS)}")
    return PRESETS[name]
