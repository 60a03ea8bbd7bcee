"""Our own checkpoints and encoder files (safetensors + JSON, written atomically). Files of other
projects (the official Re-IQA release, EfficientNet-Lite0) are read by ``reiqa.models.importers``.

A training checkpoint is a directory::

    checkpoint/
      model.safetensors   every weight and buffer of the MoCo model (query, key encoder, queue)
      config.json         the TrainConfig
      state.pt            optimizer, grad scaler, step, epoch (tensors and plain values only,
                          loaded with torch.load(weights_only=True))

written as ``checkpoint.tmp/`` and then swapped in, so a crash leaves either the old or the new
checkpoint complete. A trained encoder for feature extraction is two files:
``encoder.safetensors`` (backbone weights) and ``encoder.json`` (architecture, input
normalisation, provenance), read as an :class:`EncoderDescription`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from reiqa import schema
from reiqa.atomic import atomic_path, fsync_dir, write_json_atomic, write_text_atomic
from reiqa.errors import CheckpointError, ConfigError
from reiqa.models.backbones import build_backbone

ENCODER_FORMAT = "reiqa-encoder"


def _save_tensors(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def save_checkpoint(directory: Path, *, model: nn.Module, config_json: str, state: dict[str, Any]) -> Path:
    """Write ``directory`` (model weights, config, training state) atomically; returns it."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # each file synced to disk and into tmp/ (atomic_path) before the folder is swapped in
    _save_tensors(model.state_dict(), tmp / "model.safetensors", {"config": config_json})
    write_text_atomic(tmp / "config.json", config_json)
    with atomic_path(tmp / "state.pt") as state_tmp:
        torch.save(state, state_tmp)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def find_checkpoint(directory: Path) -> Path | None:
    """The complete checkpoint at ``directory``, or the previous one if a crash interrupted the
    swap, or None."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if all((candidate / name).is_file() for name in ("model.safetensors", "config.json", "state.pt")):
            return candidate
    return None


def load_checkpoint(directory: Path) -> tuple[str, dict[str, Tensor], dict[str, Any]]:
    """Read a checkpoint: (config JSON text, model state dict, training state)."""
    found = find_checkpoint(directory)
    if found is None:
        raise FileNotFoundError(
            f"{directory}: no complete checkpoint (model.safetensors, config.json, state.pt)"
        )
    config_json = (found / "config.json").read_text(encoding="utf-8")
    weights = load_file(str(found / "model.safetensors"))
    state = torch.load(found / "state.pt", map_location="cpu", weights_only=True)
    return config_json, weights, state


def load_state_strict(
    module: nn.Module, state: dict[str, Tensor], source: object, *, assign: bool = False
) -> None:
    """load_state_dict(strict) with an error that names the keys that differ and the file.
    ``assign``: take the given tensors as the module's (for a module built on the meta device)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} with other shapes (e.g. {k!r}: file {tuple(state[k].shape)}, "
                f"model {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{source}: does not fit the model: " + "; ".join(parts))
    module.load_state_dict(state, strict=True, assign=assign)


# -- trained encoders for feature extraction -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EncoderDescription:
    """An encoder's ``.json`` (also stored in its ``.safetensors`` metadata under 'reiqa').

    Attributes:
        format: 'reiqa-encoder'.
        version: 1.
        arch: the backbone (``reiqa.models.backbones.BACKBONES``).
        input_norm: the input normalisation it was trained with (``NORMS``); None in files
            written before it was recorded (the role's default applies).
        encoder: 'quality' or 'content', for encoders trained or exported by reiqa.
        steps: training steps done.
        trained_by: 'reiqa pretrain' for an encoder written at the end of a run.
        exported_from: 'run/checkpoint' of ``reiqa export-encoder``.
        imported_from, source_file, source_sha256: what ``reiqa import-encoder`` converted.
        extra: other keys of the file (a training config, a dtype), kept and written back.
    """

    format: str = ENCODER_FORMAT
    version: int = 1
    arch: str
    input_norm: str | None = None
    encoder: str | None = None
    steps: int | None = None
    trained_by: str | None = None
    exported_from: str | None = None
    imported_from: str | None = None
    source_file: str | None = None
    source_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the ``.json`` file (fields that are None left out)."""
        return schema.to_dict(self, omit_none=True)


def _described(raw: object, source: object) -> EncoderDescription:
    """``raw`` read as an encoder description; CheckpointError naming ``source`` and the field."""
    if not isinstance(raw, dict) or raw.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{source}: not a reiqa encoder description")
    try:
        return schema.from_dict(EncoderDescription, raw, error=CheckpointError)
    except (CheckpointError, ConfigError) as exc:
        raise CheckpointError(f"{source}: {exc}") from exc


def save_encoder(
    path_stem: Path, backbone: nn.Module, *, arch: str, input_norm: str, info: dict[str, Any] | None = None
) -> Path:
    """Write ``<stem>.safetensors`` (backbone weights) and ``<stem>.json``; returns the .json.
    ``info``: the description's other fields (see :class:`EncoderDescription`), checked."""
    path_stem = Path(path_stem)
    meta_path = path_stem.with_suffix(".json")
    raw = {"format": ENCODER_FORMAT, "version": 1, "arch": arch, "input_norm": input_norm, **(info or {})}
    meta = _described(raw, meta_path).to_dict()
    _save_tensors(backbone.state_dict(), path_stem.with_suffix(".safetensors"), {"reiqa": json.dumps(meta)})
    write_json_atomic(meta_path, meta)
    return meta_path


def _read_description(meta_path: Path) -> EncoderDescription:
    """An encoder's ``.json`` description, checked field by field (CheckpointError naming the file)."""
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: unreadable encoder description: {exc}") from exc
    return _described(raw, meta_path)


def load_encoder(path: Path) -> tuple[nn.Module, EncoderDescription]:
    """Load a backbone saved by :func:`save_encoder` (give the .json or .safetensors path):
    (backbone, its description)."""
    path = Path(path)
    meta_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not meta_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(f"{path}: needs both {meta_path.name} and {weights_path.name}")
    description = _read_description(meta_path)
    backbone = build_backbone(description.arch)
    load_state_strict(backbone, load_file(str(weights_path)), weights_path)
    return backbone, description


def warm_start(backbone: nn.Module, path: str | Path, *, arch: str, input_norm: str) -> None:
    """Load into ``backbone`` (a ``arch`` encoder's) the weights of ``path``: a reiqa encoder
    (``.json`` + ``.safetensors``, checked to be ``arch`` with ``input_norm``) or a bare
    ``.safetensors`` of that backbone (e.g. a bundle's ``content.safetensors``). Raises
    CheckpointError naming the file when it is missing, of another kind, or does not fit."""
    path = Path(path)
    meta_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: warm-start weights not found (model.init)")
    if meta_path.is_file():
        description = _read_description(meta_path)
        if description.arch != arch:
            raise CheckpointError(f"{meta_path}: a {description.arch!r} encoder, the config trains {arch!r}")
        if description.input_norm != input_norm:
            raise CheckpointError(
                f"{meta_path}: trained with input_norm {description.input_norm!r}, the config has "
                f"{input_norm!r} (set model.input_norm to match)"
            )
    try:
        weights = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types for torn files
        raise CheckpointError(f"{weights_path}: unreadable safetensors file: {exc}") from exc
    load_state_strict(backbone, weights, weights_path)  # copies into the backbone's float32


def export_encoder(checkpoint_dir: Path, path_stem: Path) -> Path:
    """Write the query encoder's backbone of a training checkpoint as ``<stem>.safetensors`` +
    ``<stem>.json`` (what ``reiqa features`` reads), e.g. to use a run before its schedule ends."""
    config_json, weights, state = load_checkpoint(checkpoint_dir)
    config = json.loads(config_json)
    prefix = "query.backbone."
    backbone = build_backbone(config["model"]["arch"])
    load_state_strict(
        backbone, {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}, checkpoint_dir
    )
    return save_encoder(
        path_stem,
        backbone,
        arch=config["model"]["arch"],
        input_norm=config["model"]["input_norm"],
        info={
            "encoder": config["encoder"],
            "steps": int(state["step"]),
            "exported_from": f"{Path(checkpoint_dir).resolve().parent.name}/{Path(checkpoint_dir).name}",
        },
    )
