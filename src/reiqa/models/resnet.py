"""ResNet-18/34/50 as torchvision builds them (same modules, parameter names and initialisation,
so the same seed gives the same weights and torchvision or official checkpoints load as they
are), without importing torchvision: its import pulls in ``torch._dynamo`` and costs about 1.4 s,
more than half of what scoring one photo takes after ``import torch``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ResNet", "resnet18", "resnet34", "resnet50"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)  # stride on the 3x3 (ResNet v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` (v1.5, no zero-init of the last BN), ``fc`` included so that the
    random initialisation draws the same numbers in the same order."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        *,
        initialise: bool = True,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self._widths = {"layer2": self.inplanes}
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self._widths["layer3"] = self.inplanes
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.gap_dim = self.inplanes
        #: names of layers whose global averages follow the last one's (``backbones.set_pooling``)
        self.taps: tuple[str, ...] = ()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        if not initialise:  # weights about to be loaded (and, on the meta device, kaiming_normal_
            return  # would import torch._dynamo: 1.4 s)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stage_ends(self, last: int = 3) -> dict[str, int]:
        """{layer name: width} of the stages before the last: ``layer2`` and ``layer3`` for the
        last three stages, ``layer4``'s own average being the head's (``backbones.set_pooling``)."""
        names = ("layer2", "layer3")[max(0, 3 - last) :]
        return {name: self._widths[name] for name in names}

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        pooled = []
        for name in ("layer2", "layer3"):
            x = getattr(self, name)(x)
            if name in self.taps:
                pooled.append(x.mean(dim=(2, 3)))
        x = self.fc(self.avgpool(self.layer4(x)).flatten(1))
        return torch.cat([x, *pooled], dim=1) if pooled else x


def resnet18(*, initialise: bool = True, **_: object) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], initialise=initialise)


def resnet34(*, initialise: bool = True, **_: object) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], initialise=initialise)


def resnet50(*, initialise: bool = True, **_: object) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], initialise=initialise)
