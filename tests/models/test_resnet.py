"""Our ResNets are torchvision's: same parameter names and shapes, same weights from the same
seed, same outputs."""

from __future__ import annotations

import pytest
import torch
from torchvision import models

from reiqa.models import resnet


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_same_seed_same_weights_and_outputs_as_torchvision(name) -> None:
    torch.manual_seed(3)
    ours = getattr(resnet, name)().eval()
    torch.manual_seed(3)
    theirs = getattr(models, name)(weights=None).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_scoring_does_not_import_torchvision() -> None:
    import subprocess
    import sys

    code = "import sys, reiqa.jobs; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
