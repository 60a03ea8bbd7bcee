"""compat mode against an independent rendering of the official behaviour with PIL, numpy,
scipy and scikit-image (``reference.py``), on small images: at least 35 dB PSNR everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reiqa.distortions import CATALOG, apply, sample_params
from tests.conftest import textured_images
from tests.distortions import reference

TYPE_LEVELS = [(t, lv) for t in CATALOG for lv in range(5)]
IDS = [f"{CATALOG[t].name}-L{lv}" for t, lv in TYPE_LEVELS]


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def reference_params(type_id: int, level: int, p: dict[str, torch.Tensor]) -> dict:
    """Our per-image draws in the reference's keyword form."""
    if type_id == 4:
        return {"shift": tuple(int(v) for v in p["shift"])}
    if type_id in (8, 9, 11):
        return {"noise": p["noise"].permute(1, 2, 0).double().numpy()}
    if type_id == 10:
        return {"u": p["u"][0].double().numpy()}
    if type_id == 12:
        return {"noise": p["noise"].permute(1, 2, 0).double().numpy(), "box": bool(p["box"])}
    if type_id == 19:
        count = int(reference.LEVELS[19][level])
        return {
            "blocks": [
                (
                    int(p["corners"][b, 0]),
                    int(p["corners"][b, 1]),
                    tuple(round(c * 255) for c in p["colors"][b].tolist()),
                )
                for b in range(count)
            ]
        }
    if type_id == 21:
        count = int(reference.LEVELS[21][level])
        return {"moves": [tuple(int(v) for v in p["moves"][m]) for m in range(count)]}
    if type_id == 22:
        return {"shifts": [p["shifts"][r].permute(1, 2, 0).double().numpy() for r in range(5)]}
    if type_id == 26:
        return {"vertical": bool(p["vertical"])}
    return {}


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_reference_levels_match_the_catalogue() -> None:
    for t, spec in CATALOG.items():
        assert tuple(reference.LEVELS[t]) == tuple(spec.levels), spec.name


@pytest.mark.parametrize(("type_id", "level"), TYPE_LEVELS, ids=IDS)
def test_compat_agrees_with_the_reference_rendering(type_id: int, level: int) -> None:
    images = torch.round(textured_images(2, 53, 71, seed=type_id) * 255) / 255
    params = sample_params(images, type_id, level, generator=torch.Generator().manual_seed(level))
    ours = apply(images, type_id, level, params=params, compat=True)
    for i in range(len(images)):
        ref = reference.render(
            type_id, to_uint8_hwc(images[i]), level, **reference_params(type_id, level, params[i])
        )
        assert psnr_uint8(to_uint8_hwc(ours[i]), ref) >= 35.0


def test_default_sharpen_is_fixed_and_compat_keeps_the_defect() -> None:
    x = textured_images(1, 48, 48)
    fixed = apply(x, "sharpen", 0)
    broken = apply(x, "sharpen", 0, compat=True)
    err_fixed = torch.mean((fixed - x) ** 2).item()
    err_broken = torch.mean((broken - x) ** 2).item()
    assert 10 * np.log10(1 / err_fixed) > 20  # a mild sharpening
    assert 10 * np.log10(1 / err_broken) < 12  # the official colour-shifted garbage


def test_default_color_shift_moves_green_in_two_dimensions() -> None:
    x = torch.zeros(1, 3, 40, 40)
    x[:, 1, 10:30, 10:30] = 1.0  # a green square: its edges weigh the shift
    params = [{"shift": torch.tensor([3, 0])}]  # 3 px down, 0 right
    fixed = apply(x, "color_shift", 4, params=params)[0, 1]
    flat = apply(x, "color_shift", 4, params=params, compat=True)[0, 1]
    # A downward shift leaves green below the square's bottom edge and none right of it.
    assert fixed[31, 20] > 0.3 and fixed[20, 31] < 1e-6
    # The official flat roll moves it 3 px to the right instead.
    assert flat[20, 31] > 0.3 and flat[31, 20] < 1e-6
