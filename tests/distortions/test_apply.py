"""Properties every distortion type and level must have, on CPU and (when present) CUDA."""

from __future__ import annotations

import itertools

import pytest
import torch

from reiqa.distortions import CATALOG, apply, sample_params
from tests.conftest import textured_images

TYPE_LEVELS = [(t, lv) for t in CATALOG for lv in range(5)]
IDS = [f"{CATALOG[t].name}-L{lv}" for t, lv in TYPE_LEVELS]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


@pytest.mark.parametrize("compat", [False, True], ids=["default", "compat"])
@pytest.mark.parametrize(("type_id", "level"), TYPE_LEVELS, ids=IDS)
def test_keeps_shape_dtype_range_and_device(type_id: int, level: int, compat: bool, device) -> None:
    x = textured_images(2, 40, 56).to(device)
    y = apply(x, type_id, level, generator=torch.Generator(device).manual_seed(0), compat=compat)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize(("type_id", "level"), TYPE_LEVELS, ids=IDS)
def test_same_seed_same_output(type_id: int, level: int, device) -> None:
    x = textured_images(2, 32, 32).to(device)
    a = apply(x, type_id, level, generator=torch.Generator(device).manual_seed(3))
    b = apply(x, type_id, level, generator=torch.Generator(device).manual_seed(3))
    assert torch.equal(a, b)
    if CATALOG[type_id].random and CATALOG[type_id].id not in (26,):
        c = apply(x, type_id, level, generator=torch.Generator(device).manual_seed(4))
        assert not torch.equal(a, c), "a different seed should give different random draws"


@pytest.mark.parametrize("type_id", list(CATALOG), ids=[s.name for s in CATALOG.values()])
def test_batch_equals_images_done_one_at_a_time(type_id: int, device) -> None:
    x = textured_images(5, 36, 44, seed=1).to(device)
    levels = torch.arange(5)
    batch = apply(x, type_id, levels, generator=torch.Generator(device).manual_seed(7))
    g = torch.Generator(device).manual_seed(7)
    singles = torch.cat([apply(x[i : i + 1], type_id, i, generator=g) for i in range(5)])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)


def test_one_call_mixes_types_and_levels() -> None:
    x = textured_images(26, 32, 32, seed=2)
    types = torch.arange(1, 27)
    levels = torch.arange(26) % 5
    mixed = apply(x, types, levels, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    one_by_one = torch.cat(
        [apply(x[i : i + 1], int(types[i]), int(levels[i]), generator=g) for i in range(26)]
    )
    torch.testing.assert_close(mixed, one_by_one, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compat", [False, True], ids=["default", "compat"])
@pytest.mark.parametrize(("type_id", "level"), TYPE_LEVELS, ids=IDS)
def test_cpu_equals_cuda(type_id: int, level: int, compat: bool) -> None:
    x = textured_images(2, 48, 48, seed=3)
    params = sample_params(x, type_id, level, generator=torch.Generator().manual_seed(0))
    cpu = apply(x, type_id, level, params=params, compat=compat)
    cuda_params = [{k: v.cuda() for k, v in p.items()} for p in params]
    gpu = apply(x.cuda(), type_id, level, params=cuda_params, compat=compat).cpu()
    if CATALOG[type_id].name == "jpeg":  # nvJPEG and libjpeg differ by rounding
        assert psnr(cpu, gpu) > 40
    elif compat:  # a value on a rounding boundary may land one 8-bit step apart
        assert (cpu - gpu).abs().gt(1.5 / 255).float().mean() < 1e-3
    else:
        torch.testing.assert_close(cpu, gpu, atol=2e-4, rtol=0)


MONOTONE = [t for t, s in CATALOG.items() if s.monotone]


@pytest.mark.parametrize("compat", [False, True], ids=["default", "compat"])
@pytest.mark.parametrize("type_id", MONOTONE, ids=[CATALOG[t].name for t in MONOTONE])
def test_strength_grows_with_level(type_id: int, compat: bool) -> None:
    """For the types the spec calls monotone, PSNR to the input falls from L0 to L4 (the random
    draws are the same at every level: same seed)."""
    if compat and CATALOG[type_id].name == "sharpen":
        pytest.skip("the official sharpen is broken at every level (docs/method.md §1.4.1)")
    x = torch.round(textured_images(1, 96, 96, seed=4) * 255) / 255  # 8-bit, as compat sees it
    outputs = [
        apply(x, type_id, lv, generator=torch.Generator().manual_seed(0), compat=compat) for lv in range(5)
    ]
    if CATALOG[type_id].name == "color_block":
        # A later block may repaint an earlier one in a closer colour, so PSNR can rise while
        # the painted area (the strength) still grows: measure that area in dB-like units.
        scores = [-100 * (y != x).any(dim=1).float().mean().item() for y in outputs]
    else:
        scores = [psnr(y, x) for y in outputs]
    assert all(a >= b - 0.05 for a, b in itertools.pairwise(scores)), scores
    assert scores[0] > scores[-1] + 1.0, scores


def test_params_replay_gives_the_same_output() -> None:
    x = textured_images(3, 32, 32)
    params = sample_params(x, "white_noise", 2, generator=torch.Generator().manual_seed(0))
    a = apply(x, "white_noise", 2, params=params)
    b = apply(x, "white_noise", 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_half_precision_input_keeps_its_dtype() -> None:
    x = textured_images(2, 32, 32).half()
    y = apply(x, "gaussian_blur", 3)
    assert y.dtype == torch.float16


@pytest.mark.parametrize(
    ("images", "types", "levels", "error", "match"),
    [
        (torch.rand(3, 8, 8), 1, 0, ValueError, r"\(N, 3, H, W\)"),
        (torch.rand(2, 1, 8, 8), 1, 0, ValueError, r"\(N, 3, H, W\)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 1, 0, TypeError, "float"),
        (torch.rand(2, 3, 8, 8), 1, 5, ValueError, r"0\.\.4"),
        (torch.rand(2, 3, 8, 8), [1, 2, 3], 0, ValueError, "one entry per image"),
        (torch.rand(2, 3, 8, 8), "blurr", 0, KeyError, "unknown distortion"),
    ],
)
def test_bad_arguments_raise_clear_errors(images, types, levels, error, match) -> None:
    with pytest.raises(error, match=match):
        apply(images, types, levels)
