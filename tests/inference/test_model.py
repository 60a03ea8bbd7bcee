"""``ReIQA.score`` on every kind of input: tensors, arrays, PIL images, paths; what it refuses."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from PIL import Image

import reiqa
from tests.conftest import textured_images


@pytest.fixture(scope="module")
def model():
    return reiqa.load()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 64 x 64 (H, W, 3) uint8 image."""
    return (textured_images(1, 64, 64, seed=3)[0].permute(1, 2, 0) * 255).round().byte().numpy()


def test_every_kind_of_input_gets_the_score_of_its_file(model, photo, tmp_path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    from_file = model.score(path)  # what `reiqa score` computes
    u8 = torch.from_numpy(photo).permute(2, 0, 1).contiguous()
    same = pytest.approx(from_file, abs=1e-4)
    assert model.score(u8) == same  # was -462 for a photo the CLI scores 66: uint8 read as 0..255
    assert model.score(u8.float() / 255) == same
    assert model.score(u8.double() / 255) == same
    assert model.score(str(path)) == same
    assert model.score(photo) == same  # numpy (H, W, 3) uint8
    assert model.score(photo.astype(np.float32) / 255) == same
    assert model.score(np.ascontiguousarray(photo.transpose(2, 0, 1))) == same  # (3, H, W)
    with Image.open(path) as image:
        assert model.score(image) == same
    assert model.score(Image.fromarray(photo).convert("RGBA")) == same  # opaque alpha
    assert isinstance(model.score(u8), float) and isinstance(model.score(photo), float)
    # batches: an array, one score per image
    for batch in (u8[None].repeat(2, 1, 1, 1), photo[None].repeat(2, axis=0), photo.transpose(2, 0, 1)[None]):
        scores = model.score(batch)
        assert isinstance(scores, np.ndarray) and scores == pytest.approx([from_file] * len(batch), abs=1e-4)
    assert model.score([path, tmp_path / "missing.png"])[0] == same


def test_prepared_images_of_mixed_sizes_score_as_their_files(model, tmp_path) -> None:
    """The service's and the Ray actors' path (prepare, then score_batch over images of any sizes)
    gives the CLI's scores, and carries a failure through in its place."""
    from reiqa.io import Failure, load_image, save_image

    images = textured_images(3, 64, 96, seed=5)
    paths = []
    for i, image in enumerate([images[0], images[1][:, :48, :80], images[2]]):
        paths.append(save_image(image, tmp_path / f"{i}.png"))
    expected = [r.score for r in model.score_files(paths)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    sources = [load_image(paths[0]), paths[1].read_bytes(), broken.read_bytes(), str(paths[2])]
    names = ["a.png", "b.png", "broken.jpg", str(paths[2])]
    items = [model.prepare(src, name=name) for src, name in zip(sources, names, strict=True)]
    assert isinstance(items[2], Failure) and items[2].name == "broken.jpg"
    records = model.score_batch(names, items)
    assert [r.path for r in records] == names
    assert [records[i].score for i in (0, 1, 3)] == pytest.approx(expected, abs=1e-4)
    assert records[2].score is None and records[2].error.startswith("broken.jpg: ")
    assert model.score_batch([], []) == []
    with pytest.raises(ValueError, match="image 1"):
        model.prepare(torch.zeros(1, 8, 8), name="image 1")


def test_a_non_finite_score_is_a_failure_on_every_path(tmp_path) -> None:
    """One rule: a score is finite. One image raises, an array holds NaN, a file's record (CLI,
    service, Ray) carries the error."""
    from reiqa.errors import ModelError
    from reiqa.inference import ReIQA
    from reiqa.io import save_image

    good = reiqa.load()
    regressor = copy.deepcopy(good.regressor)
    regressor.coef_ = regressor.coef_.copy()
    regressor.coef_[0] = np.inf  # every score becomes +-inf or NaN
    broken = ReIQA(good.features, regressor, good.card)
    image = textured_images(1, 32, 32, seed=1)[0]
    with pytest.raises(ModelError, match="non-finite score"):
        broken.score(image)
    assert np.isnan(broken.score(image[None].repeat(2, 1, 1, 1))).all()
    path = save_image(image, tmp_path / "one.png")
    (record,) = broken.score_files([path])
    assert record.score is None
    assert re.fullmatch(
        rf"{re.escape(str(path))}: the model gave a non-finite score \((-?inf|nan)\)", record.error
    )
    (served,) = broken.score_batch(["upload.png"], [broken.prepare(path.read_bytes(), name="upload.png")])
    assert served.score is None and served.error.startswith("upload.png: the model gave a non-finite score")


def test_a_model_cannot_change_once_built(model) -> None:
    smaller = model.with_options(max_side=96)
    assert (smaller.max_side, model.max_side) == (96, 1024)
    assert smaller.model_id != model.model_id and model.with_options(max_side=1024) is model
    for name in ("max_side", "card", "features", "regressor", "options"):
        with pytest.raises(AttributeError):
            setattr(model, name, None)
    with pytest.raises(TypeError, match="max_side and min_side"):
        model.with_options(compat=True)
    assert model.to("cpu") is model
    assert model.features.engine.name == "torch"


def test_load_resolves_device_auto() -> None:
    model = reiqa.load(device="auto")
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(reiqa.ReiqaError, match="unknown device 'gpu'"):
        reiqa.load(device="gpu")


def test_model_id_follows_the_regressor(model) -> None:
    import copy

    other = copy.deepcopy(model)
    assert other.model_id == model.model_id and len(model.model_id) == 16
    other.regressor.intercept_ = model.regressor.intercept_ + 1.0
    assert other.model_id != model.model_id


def test_float_images_may_overshoot_one_by_rounding(model) -> None:
    white = torch.ones(3, 16, 16)
    assert model.score(white + 5e-7) == pytest.approx(model.score(white), abs=1e-6)
    assert model.score(torch.zeros(3, 16, 16) - 5e-7) == pytest.approx(model.score(white * 0), abs=1e-6)


def _nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 3, 3] = float("nan")
    return x


def _inf(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[1, 2, 2] = float("inf")
    return x


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


TENSOR_REFUSALS = [
    pytest.param(
        lambda x: x * 255, r"values up to 2\d\d\.?\d*, looks like 0\.\.255 values; divide by 255", id="0-255"
    ),
    pytest.param(lambda x: x * 1000, r"values up to \d+\.?\d*, expected \[0, 1\]", id="beyond-255"),
    pytest.param(lambda x: x - 0.5, r"values down to -0\.\d+, expected raw RGB in \[0, 1\]", id="negative"),
    pytest.param(_nan, r"NaN or infinity; expected finite values in \[0, 1\]", id="nan"),
    pytest.param(_inf, r"NaN or infinity", id="inf"),
    pytest.param(lambda x: x > 0.5, r"dtype torch\.bool; expected float in \[0, 1\] or uint8", id="bool"),
    pytest.param(
        lambda x: (x * 255).short(), r"dtype torch\.int16; expected float in \[0, 1\] or uint8", id="int16"
    ),
    pytest.param(lambda x: (x * 255).long(), r"dtype torch\.int64", id="int64"),
    pytest.param(lambda x: x[:2], r"3 \(RGB\) channels, got shape \(2, 16, 16\)", id="2-channels"),
    pytest.param(lambda x: x.permute(1, 2, 0), r"channels last\? use \.permute\(2, 0, 1\)", id="hwc-tensor"),
    pytest.param(lambda x: x[0], r"must be \(3, H, W\) or \(N, 3, H, W\), got shape \(16, 16\)", id="2d"),
    pytest.param(lambda x: x[None, None], r"must be \(3, H, W\) or \(N, 3, H, W\)", id="5d"),
    pytest.param(lambda x: x[:, :0], r"empty, shape \(3, 0, 16\)", id="zero-height"),
    pytest.param(lambda x: x[None][:0], r"empty, shape \(0, 3, 16, 16\)", id="zero-images"),
]

ARRAY_REFUSALS = [
    pytest.param(lambda x: _hwc(x) * 255, r"the array: values up to .*divide by 255", id="array-0-255"),
    pytest.param(
        lambda x: (_hwc(x) * 255).astype(np.int16),
        r"the array: dtype int16; expected float",
        id="array-int16",
    ),
    pytest.param(lambda x: _hwc(x) > 0.5, r"the array: dtype bool; expected float", id="array-bool"),
    pytest.param(lambda x: _hwc(x).astype(np.uint16), r"dtype uint16", id="array-uint16"),
    pytest.param(lambda x: np.full((16, 16, 3), np.nan), r"the array: NaN or infinity", id="array-nan"),
    pytest.param(lambda x: np.zeros((3, 16, 3)), r"shape \(3, 16, 3\) is ambiguous", id="array-ambiguous"),
    pytest.param(
        lambda x: np.zeros((2, 3, 16, 3)), r"shape \(2, 3, 16, 3\) is ambiguous", id="array-ambiguous-batch"
    ),
    pytest.param(
        lambda x: np.zeros((16, 16, 4)), r"needs 3 \(RGB\) channels, first or last", id="array-rgba"
    ),
    pytest.param(lambda x: np.zeros((16, 16)), r"must be \(H, W, 3\), \(3, H, W\)", id="array-gray"),
    pytest.param(lambda x: np.zeros((0, 16, 3)), r"the array: empty", id="array-empty"),
]


@pytest.mark.parametrize(("make", "match"), [*TENSOR_REFUSALS, *ARRAY_REFUSALS])
def test_bad_images_are_refused_with_what_was_expected(model, make, match) -> None:
    bad = make(textured_images(1, 16, 16)[0])
    with pytest.raises(ValueError, match=match):
        model.score(bad)
    if isinstance(bad, torch.Tensor) and bad.ndim == 3:  # the pipeline's own entry checks the same
        with pytest.raises(ValueError, match=match):
            model.prepare(bad)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(
            None, r"cannot score a NoneType; expected a path, a list of paths, a PIL image", id="none"
        ),
        pytest.param(42, r"cannot score a int", id="int"),
        pytest.param(b"photo.png", r"cannot score a bytes", id="bytes"),
        pytest.param(
            [torch.rand(3, 8, 8)], r"a list must hold paths \(str or Path\), got a Tensor", id="tensors"
        ),
    ],
)
def test_other_types_are_refused_with_what_is_accepted(model, value, match) -> None:
    with pytest.raises(TypeError, match=match):
        model.score(value)
    if not isinstance(value, bytes | list):
        with pytest.raises(TypeError, match="cannot prepare"):
            model.prepare(value)
