"""Feature backbones without the classifier: (N, 3, H, W) -> (N, D) pooled. ResNets built as
torchvision builds them (``reiqa.models.resnet``: the encoders Re-IQA trains) and EfficientNet-Lite0,
Lite1 and Lite2 (ImageNet content encoders)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from reiqa.errors import ConfigError, UnknownNameError
from reiqa.models.efficientnet_lite import efficientnet_lite0, efficientnet_lite1, efficientnet_lite2
from reiqa.models.resnet import resnet18, resnet34, resnet50

#: name -> (constructor, pooled feature dimension)
BACKBONES: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "resnet18": (resnet18, 512),
    "resnet34": (resnet34, 512),
    "resnet50": (resnet50, 2048),
    "efficientnet_lite0": (efficientnet_lite0, 1280),
    "efficientnet_lite1": (efficientnet_lite1, 1280),
    "efficientnet_lite2": (efficientnet_lite2, 1280),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: input normalisation name -> (mean, std) applied to [0, 1] RGB
NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "tf-lite": ((127 / 255,) * 3, (128 / 255,) * 3),
}


#: how an encoder's maps become its feature vector (``FeatureOptions.pooling``)
POOLINGS: dict[str, str] = {
    "gap": "the global average of the last map (Re-IQA's features)",
    "gap+stages": "the global average of the last map, then those of the ends of the last three "
    "stages before it (EfficientNet-Lite0 and Lite1: stages 5, 6 and 7, 112 + 192 + 320 channels; "
    "Lite2: 120 + 208 + 352; ResNet: layer2 and layer3)",
}


def set_pooling(net: nn.Module, pooling: str) -> nn.Module:
    """Make ``net`` return the vector of ``pooling`` (a key of ``POOLINGS``), in place; its
    ``feature_dim`` follows. The weights are untouched. A module without stage outputs (an
    exported graph, whose pooling is part of the graph) is returned as it is for 'gap' and
    refused otherwise."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
    stage_ends = getattr(net, "stage_ends", None)
    if stage_ends is None:
        if pooling != "gap" and not getattr(net, "pooled_in_graph", False):
            raise ConfigError(f"a {type(net).__name__} has no stage outputs to pool ({pooling!r})")
        return net
    taps = stage_ends() if pooling == "gap+stages" else {}
    net.taps = tuple(taps)
    net.feature_dim = net.gap_dim + sum(taps.values())
    return net


def feature_dim(arch: str) -> int:
    """Pooled feature dimension of a backbone."""
    return _lookup(arch)[1]


def _lookup(arch: str) -> tuple[Callable[..., nn.Module], int]:
    if arch not in BACKBONES:
        near = difflib.get_close_matches(arch, list(BACKBONES), n=3)
        raise UnknownNameError(f"unknown backbone {arch!r}; close: {near}; choices: {sorted(BACKBONES)}")
    return BACKBONES[arch]


def build_backbone(arch: str, *, initialise: bool = True) -> nn.Module:
    """A randomly initialised backbone that returns the global-average-pooled feature, its width
    in ``feature_dim``. ResNets are torchvision's (``reiqa.models.resnet``: Kaiming fan-out convs,
    BN weight 1 and bias 0, as the official training) with ``fc`` the identity; their parameter
    names are torchvision's, which the official checkpoints also use. EfficientNet-Lite0, Lite1
    and Lite2 are ``reiqa.models.efficientnet_lite``. ``initialise=False`` skips the ResNets'
    initialisation loop, for weights that are loaded right after."""
    constructor, dim = _lookup(arch)
    net = constructor(weights=None, initialise=initialise)
    if hasattr(net, "fc"):
        net.fc = nn.Identity()
    net.feature_dim = dim
    return net


class InputNorm(nn.Module):
    """Per-channel (x - mean) / std with constant buffers; identity when ``kind`` is 'none'.

    The quality encoder sees raw [0, 1] RGB and the content encoder ImageNet-normalised RGB
    (docs/method.md §3-§4); this module is the one place where that difference lives. 'tf-lite' is the
    TensorFlow EfficientNet-Lite scaling, (255 x - 127) / 128."""

    def __init__(self, kind: str = "none") -> None:
        super().__init__()
        if kind not in NORMS:
            raise ValueError(f"input normalisation must be one of {sorted(NORMS)}, got {kind!r}")
        self.kind = kind
        mean, std = NORMS[kind]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "none":
            return x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return self.kind
