from __future__ import annotations

import pytest
import torch

DEVICES = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session", autouse=True)
def _private_reiqa_cache(tmp_path_factory: pytest.TempPathFactory):
    """Exported ONNX graphs go to a folder of the test session, never the user's ~/.cache/reiqa."""
    import os

    old = os.environ.get("REIQA_CACHE")
    os.environ["REIQA_CACHE"] = str(tmp_path_factory.mktemp("reiqa-cache"))
    yield
    if old is None:
        os.environ.pop("REIQA_CACHE", None)
    else:
        os.environ["REIQA_CACHE"] = old


@pytest.fixture(params=DEVICES, ids=str)
def device(request: pytest.FixtureRequest) -> torch.device:
    return request.param


def textured_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, h, w) float in [0, 1] that look a little like photographs: smooth colour fields,
    a few hard edges and fine texture, so that every distortion has something to act on."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    ys = torch.linspace(0, 1, h).view(1, 1, h, 1)
    xs = torch.linspace(0, 1, w).view(1, 1, 1, w)
    offsets = torch.rand(n, 3, 1, 1, generator=g)
    edges = ((xs + 0.5 * ys + offsets) % 0.5 > 0.25).float()
    texture = torch.rand(n, 3, h, w, generator=g)
    return (0.55 * smooth + 0.3 * edges + 0.15 * texture).clamp(0.0, 1.0)


def randomize_batchnorm(*nets: torch.nn.Module) -> None:
    """Random BatchNorm running statistics (fresh ones are 0 and 1, which hide mistakes in BN
    folding and in which map is pooled), drawn from torch's global generator."""
    with torch.no_grad():
        for net in nets:
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)


def save_tiny_bundle(folder, seed: int = 0, name: str = "test model", *, content: bool = False):
    """A small model folder (a random ResNet-18 quality encoder, with ``content`` a random
    ResNet-18 content encoder too, and a ridge fitted on random features) for tests of scoring,
    written to ``folder``; returns the folder."""
    import numpy as np

    from reiqa.inference import ScoreSpec, assemble
    from reiqa.models.backbones import build_backbone
    from reiqa.regress import QualityRegressor

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = 2048 if content else 1024
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(12, features)), rng.uniform(0, 100, 12))
    model = assemble(
        build_backbone("resnet18"),
        build_backbone("resnet18") if content else None,
        regressor,
        quality_arch="resnet18",
        content_arch="resnet18" if content else None,
        name=name,
        score=ScoreSpec(range=(0, 100)),
    )
    return model.save(folder)


def run_cli(args: list[object], capsys, monkeypatch) -> tuple[int, str, str]:
    """reiqa's entry point with ``args``, in process: (exit status, stdout, stderr)."""
    import os
    import sys

    from reiqa.cli import main

    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    monkeypatch.setattr(sys, "argv", ["reiqa", *argv])
    monkeypatch.delenv("REIQA_DEBUG", raising=False)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
