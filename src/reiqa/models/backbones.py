"""ResNet backbones from torchvision, without the classifier: (N, 3, H, W) -> (N, D) pooled."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchvision import models

from reiqa.errors import UnknownNameError

#: name -> (constructor, pooled feature dimension)
BACKBONES: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "resnet18": (models.resnet18, 512),
    "resnet34": (models.resnet34, 512),
    "resnet50": (models.resnet50, 2048),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def feature_dim(arch: str) -> int:
    """Pooled feature dimension of a backbone."""
    return _lookup(arch)[1]


def _lookup(arch: str) -> tuple[Callable[..., nn.Module], int]:
    if arch not in BACKBONES:
        near = difflib.get_close_matches(arch, list(BACKBONES), n=3)
        raise UnknownNameError(f"unknown backbone {arch!r}; close: {near}; choices: {sorted(BACKBONES)}")
    return BACKBONES[arch]


def build_backbone(arch: str) -> nn.Module:
    """A randomly initialised torchvision ResNet (Kaiming fan-out convs, BN weight 1 and bias 0,
    as the official training) whose ``fc`` is the identity: it returns the global-average-pooled
    feature. Parameter names are torchvision's, which the official checkpoints also use."""
    constructor, _ = _lookup(arch)
    net = constructor(weights=None)
    net.fc = nn.Identity()
    return net


class InputNorm(nn.Module):
    """Per-channel (x - mean) / std with constant buffers; identity when ``kind`` is 'none'.

    The quality encoder sees raw [0, 1] RGB and the content encoder ImageNet-normalised RGB
    (METHOD.md 3-4); this module is the one place where that difference lives."""

    def __init__(self, kind: str = "none") -> None:
        super().__init__()
        if kind not in ("none", "imagenet"):
            raise ValueError(f"input normalisation must be 'none' or 'imagenet', got {kind!r}")
        self.kind = kind
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "none":
            return x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return self.kind
