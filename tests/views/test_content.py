"""The content-aware (MoCo-v2 augmentation B) view sampler."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from reiqa.errors import ConfigError
from reiqa.views.content import (
    JITTER_NAMES,
    ContentViewConfig,
    ContentViewParams,
    ContentViews,
    apply_content_view,
    blur_kernel_size,
    draw_content_view,
)
from tests.conftest import textured_images

SMALL = ContentViewConfig(size=32)
OFF = dict(flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    return TF.resize(image, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)


def test_shape_range_dtype_and_device(device: torch.device) -> None:
    images = [textured_images(1, 48, 64)[0].to(device), textured_images(1, 80, 40, seed=1)[0].to(device)]
    out = ContentViews(SMALL)(images, generator=gen(0))
    assert out.shape == (2, 6, 32, 32) and out.dtype == torch.float32 and out.device == device
    assert out.min() >= 0 and out.max() <= 1


def test_tensor_batch_and_list_of_different_sizes_work() -> None:
    views = ContentViews(SMALL)
    batch = textured_images(3, 40, 56)
    assert torch.equal(views(batch, generator=gen(1)), views(list(batch), generator=gen(1)))
    sizes = [(32, 32), (96, 48), (40, 90)]
    images = [textured_images(1, h, w, seed=i)[0] for i, (h, w) in enumerate(sizes)]
    assert views(images, generator=gen(1)).shape == (3, 6, 32, 32)


def test_same_seed_same_views_and_different_seed_differs() -> None:
    images = textured_images(2, 64, 64)
    views = ContentViews(SMALL)
    a = views(images, generator=gen(3))
    b = views(images, generator=gen(3))
    c = views(images, generator=gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_global_rng_is_never_used() -> None:
    images = textured_images(2, 48, 48)
    state = torch.get_rng_state()
    ContentViews(SMALL)(images, generator=gen(0))
    ContentViews(SMALL)(images)  # no generator: OS-entropy seeded, still not the global RNG
    assert torch.equal(torch.get_rng_state(), state)


def test_batch_equals_images_one_at_a_time() -> None:
    images = [
        textured_images(1, 48, 64)[0],
        textured_images(1, 64, 40, seed=1)[0],
        textured_images(1, 56, 56)[0],
    ]
    views = ContentViews(SMALL)
    batch = views(images, generator=gen(5))
    g = gen(5)
    single = torch.cat([views([image], generator=g) for image in images])
    assert torch.equal(batch, single)


def test_query_and_key_are_independent_draws() -> None:
    out = ContentViews(SMALL)(textured_images(4, 64, 64), generator=gen(6))
    for b in range(4):
        assert not torch.equal(out[b, :3], out[b, 3:])


def test_draw_then_apply_replays_the_call() -> None:
    images = textured_images(2, 48, 72)
    views = ContentViews(SMALL)
    params = views.draw(images, generator=gen(7))
    logged = json.dumps([[dataclasses.asdict(p) for p in pair] for pair in params])  # a draw can be logged
    assert json.loads(logged)[0][0]["size"] == 32
    assert torch.equal(views.apply(images, params), views(images, generator=gen(7)))


def test_everything_off_full_crop_is_a_plain_resize() -> None:
    cfg = ContentViewConfig(size=24, scale=(1.0, 1.0), ratio=(1.0, 1.0), **OFF)
    image = textured_images(1, 48, 48, seed=2)[0]
    out = ContentViews(cfg)([image], generator=gen(0))[0]
    torch.testing.assert_close(out[:3], resize(image, 24), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[3:], resize(image, 24), rtol=0, atol=1e-6)
    # a non-square image has no full-area crop of ratio 1: the fallback is the centre square
    wide = textured_images(1, 40, 64, seed=3)[0]
    out = ContentViews(cfg)([wide], generator=gen(0))[0]
    torch.testing.assert_close(out[:3], resize(wide[:, :, 12:52], 24), rtol=0, atol=1e-6)


def test_view_at_source_size_is_a_copy_not_the_input() -> None:
    cfg = ContentViewConfig(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), **OFF)
    image = textured_images(1, 32, 32)[0] * 1.5 - 0.25  # out of range on purpose
    before = image.clone()
    view = apply_content_view(image, draw_content_view(32, 32, cfg, generator=gen(0)))
    assert torch.equal(image, before) and view.min() >= 0 and view.max() <= 1


def test_flip_only_gives_a_mirrored_resize() -> None:
    cfg = ContentViewConfig(size=24, scale=(1.0, 1.0), ratio=(1.0, 1.0), **{**OFF, "flip_p": 1.0})
    image = textured_images(1, 40, 40, seed=4)[0]
    out = ContentViews(cfg)([image], generator=gen(0))[0]
    torch.testing.assert_close(out[:3], resize(image, 24).flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[3:], resize(image, 24).flip(-1), rtol=0, atol=1e-6)


def test_gray_gives_equal_channels() -> None:
    out = ContentViews(ContentViewConfig(size=32, gray_p=1.0))(textured_images(3, 48, 48), generator=gen(8))
    for view in (out[:, :3], out[:, 3:]):
        assert torch.equal(view[:, 0], view[:, 1]) and torch.equal(view[:, 1], view[:, 2])


def _fallback(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    if width / height < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif width / height > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize(("height", "width"), [(96, 80), (32, 96)])
def test_crops_lie_in_the_scale_and_ratio_ranges_or_are_the_fallback(height: int, width: int) -> None:
    cfg = ContentViewConfig(size=32)
    lo, hi = cfg.scale
    g = gen(9)
    fallbacks = 0
    for _ in range(400):
        p = draw_content_view(height, width, cfg, generator=g)
        box = (p.top, p.left, p.height, p.width)
        assert 0 <= p.top <= height - p.height and 0 <= p.left <= width - p.width
        if box == _fallback(height, width, cfg.ratio):
            fallbacks += 1
            continue
        # w and h are rounded from sqrt(area * r) and sqrt(area / r): allow half a pixel each
        slack = 0.5 * (p.height + p.width) + 0.25
        assert lo * height * width - slack <= p.height * p.width <= hi * height * width + slack
        # the drawn ratio a lies between (w - 0.5) / (h + 0.5) and (w + 0.5) / (h - 0.5)
        assert (p.width - 0.5) / (p.height + 0.5) <= cfg.ratio[1] + 1e-6
        assert (p.width + 0.5) / (p.height - 0.5) >= cfg.ratio[0] - 1e-6
    if width / height > cfg.ratio[1]:  # 32 x 96: most attempts fail, the fallback must show up
        assert fallbacks > 0


def test_jitter_factors_and_probabilities_are_in_range() -> None:
    cfg = ContentViewConfig(size=32)
    g = gen(10)
    draws = [draw_content_view(64, 64, cfg, generator=g) for _ in range(2000)]
    for p in draws:
        if p.jitter:
            assert sorted(name for name, _ in p.jitter) == sorted(JITTER_NAMES)
            factors = dict(p.jitter)
            for name in ("brightness", "contrast", "saturation"):
                assert 0.6 <= factors[name] <= 1.4
            assert -0.1 <= factors["hue"] <= 0.1
        if p.blur_sigma is not None:
            assert 0.1 <= p.blur_sigma <= 2.0
    orders = {tuple(name for name, _ in p.jitter) for p in draws if p.jitter}
    assert len(orders) == 24  # every order of the four operations occurs
    rates = {
        "jitter": sum(bool(p.jitter) for p in draws) / len(draws),
        "gray": sum(p.gray for p in draws) / len(draws),
        "blur": sum(p.blur_sigma is not None for p in draws) / len(draws),
        "flip": sum(p.flip for p in draws) / len(draws),
    }
    expected = {"jitter": 0.8, "gray": 0.2, "blur": 0.5, "flip": 0.5}
    for name, rate in rates.items():
        assert abs(rate - expected[name]) < 0.05, (name, rate)


def test_zero_strength_jitter_operations_are_skipped() -> None:
    cfg = ContentViewConfig(size=32, jitter=(0.0, 0.3, 0.0, 0.0), jitter_p=1.0)
    p = draw_content_view(40, 40, cfg, generator=gen(11))
    assert [name for name, _ in p.jitter] == ["contrast"] and 0.7 <= p.jitter[0][1] <= 1.3


class _ReferenceBlur(T.GaussianBlur):
    """torchvision's GaussianBlur draw with the kernel size reiqa chooses for the drawn sigma."""

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        k = blur_kernel_size(params["sigma"][0], inpt.shape[-1])
        return TF.gaussian_blur(inpt, [k, k], params["sigma"])


def test_matches_the_torchvision_pipeline_under_the_same_seed() -> None:
    cfg = ContentViewConfig(size=32, blur_p=0.7, gray_p=0.4)
    pipeline = T.Compose(
        [
            T.RandomResizedCrop(cfg.size, scale=cfg.scale, ratio=cfg.ratio, antialias=True),
            T.RandomApply([T.ColorJitter(*cfg.jitter)], p=cfg.jitter_p),
            T.RandomGrayscale(p=cfg.gray_p),
            T.RandomApply([_ReferenceBlur(3, sigma=cfg.blur_sigma)], p=cfg.blur_p),
            T.RandomHorizontalFlip(p=cfg.flip_p),
        ]
    )
    images = [textured_images(1, 56, 72, seed=s)[0] for s in range(6)]
    ours = ContentViews(cfg)(images, generator=gen(12))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12)
        ref = torch.stack([torch.cat([pipeline(image), pipeline(image)]) for image in images])
    torch.testing.assert_close(ours, ref.clamp(0, 1), rtol=0, atol=1e-6)


def test_blur_kernel_size_is_odd_and_fits() -> None:
    assert blur_kernel_size(0.1, 224) == 3 and blur_kernel_size(2.0, 224) == 13
    assert blur_kernel_size(2.0, 8) == 7 and blur_kernel_size(2.0, 1) == 1
    for side in range(1, 20):
        for sigma in (0.1, 0.5, 1.0, 2.0, 5.0):
            k = blur_kernel_size(sigma, side)
            assert k % 2 == 1 and 1 <= k <= side


def test_blur_on_tiny_views_runs() -> None:
    cfg = ContentViewConfig(size=3, blur_p=1.0, blur_sigma=(2.0, 2.0))
    out = ContentViews(cfg)(textured_images(2, 32, 32), generator=gen(13))
    assert out.shape == (2, 6, 3, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generator_seeds_a_cpu_draw() -> None:
    images = textured_images(2, 48, 48).cuda()
    views = ContentViews(SMALL)
    a = views(images, generator=torch.Generator("cuda").manual_seed(0))
    b = views(images, generator=torch.Generator("cuda").manual_seed(0))
    assert a.is_cuda and torch.equal(a, b)


def test_config_round_trips_through_json() -> None:
    cfg = ContentViewConfig(size=64, scale=(0.3, 0.9))
    back = ContentViewConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))  # tuples come back as lists
    assert back == cfg and isinstance(back.scale, tuple)


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 0},
        {"size": 2.5},
        {"scale": (0.0, 1.0)},
        {"scale": (0.5, 0.2)},
        {"scale": (0.2, 1.5)},
        {"scale": (0.2,)},
        {"ratio": (0.0, 1.0)},
        {"ratio": (2.0, 1.0)},
        {"flip_p": 1.5},
        {"jitter_p": -0.1},
        {"gray_p": float("nan")},
        {"blur_p": 2.0},
        {"jitter": (0.4, 0.4, 0.4)},
        {"jitter": (-0.1, 0.4, 0.4, 0.1)},
        {"jitter": (0.4, 0.4, 0.4, 0.6)},
        {"jitter": (0.4, float("nan"), 0.4, 0.1)},
        {"blur_sigma": (0.0, 2.0)},
        {"blur_sigma": (2.0, 0.1)},
    ],
)
def test_bad_config_raises_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ContentViewConfig(**bad)


def test_bad_inputs_raise() -> None:
    views = ContentViews(SMALL)
    with pytest.raises(ValueError, match="no images"):
        views([], generator=gen(0))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        views([torch.rand(1, 32, 32, generator=gen(0))], generator=gen(0))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        views(torch.rand(3, 32, 32, generator=gen(0)), generator=gen(0))
    with pytest.raises(TypeError, match="float"):
        views([torch.zeros(3, 32, 32, dtype=torch.uint8)], generator=gen(0))
    with pytest.raises(ValueError, match="parameter pairs"):
        views.apply(textured_images(2, 32, 32), views.draw(textured_images(1, 32, 32), generator=gen(0)))
    assert isinstance(ContentViewParams(0, 0, 32, 32, 32), ContentViewParams)
