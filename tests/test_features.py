from __future__ import annotations

import numpy as np
import pytest
import torch

from reiqa.features import FeatureModel, FeatureTable, extract
from reiqa.io import save_image
from reiqa.models.backbones import build_backbone
from reiqa.resize import half_scale
from tests.conftest import textured_images


@pytest.fixture(scope="module")
def model() -> FeatureModel:
    torch.manual_seed(0)
    return FeatureModel(build_backbone("resnet18"), build_backbone("resnet18"))


def test_layout_is_quality_full_half_then_content_full_half(model) -> None:
    x = textured_images(2, 64, 80)
    f = model(x)
    assert f.shape == (2, 4 * 512)
    assert [b for b, _ in model.blocks()] == ["quality_full", "quality_half", "content_full", "content_half"]
    with torch.inference_mode():
        torch.testing.assert_close(f[:, :512], model.quality(x))
        torch.testing.assert_close(f[:, 512:1024], model.quality(half_scale(x)))
        torch.testing.assert_close(f[:, 1024:1536], model.content(model.content_norm(x)))


@pytest.fixture
def files(tmp_path):
    images = textured_images(3, 48, 64, seed=1)
    paths = [save_image(images[i], tmp_path / f"{i}.png") for i in range(3)]
    paths.insert(1, save_image(textured_images(1, 40, 40, seed=2)[0], tmp_path / "other size.png"))
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    return [*paths, bad]


def test_extract_batches_by_size_skips_bad_files_and_matches_single_images(model, files) -> None:
    table = extract(model, files, batch_size=4)
    assert [p.name for p in table.paths] == ["0.png", "other size.png", "1.png", "2.png"]
    assert len(table.failures) == 1 and table.failures[0][0].name == "bad.jpg"
    single = extract(model, [files[2]], batch_size=1)
    np.testing.assert_allclose(table.features[2], single.features[0], atol=1e-4)


def test_cache_skips_done_images_and_survives_a_partial_run(model, files, tmp_path) -> None:
    cache = tmp_path / "cache"
    extract(model, files[:2], cache=cache)  # a run that stopped after two images
    calls = []
    original = model.forward

    def counting(x):
        calls.append(len(x))
        return original(x)

    model.forward = counting
    try:
        table = extract(model, files, cache=cache, batch_size=8)
        assert sum(calls) == 2  # only 1.png and 2.png were computed
        calls.clear()
        again = extract(model, files, cache=cache)
        assert sum(calls) == 0
    finally:
        del model.forward
    np.testing.assert_array_equal(table.features, again.features)


def test_feature_file_round_trip_and_blocks(model, files, tmp_path) -> None:
    table = extract(model, files[:2])
    path = table.save(tmp_path / "f.safetensors")
    loaded = FeatureTable.load(path)
    assert loaded.paths == table.paths and loaded.blocks == table.blocks
    np.testing.assert_array_equal(loaded.features, table.features)
    assert loaded.select(["quality_half"]).features.shape == (2, 512)
    np.testing.assert_array_equal(loaded.columns(["quality_half"]), table.features[:, 512:1024])
    with pytest.raises(ValueError, match="no block"):
        loaded.columns(["texture"])
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a reiqa feature file"):
        FeatureTable.load(tmp_path / "x.safetensors")


def test_the_feature_iterator_yields_every_file_once_in_order_with_cache_and_failures(
    model, files, tmp_path
) -> None:
    from reiqa.features import FeatureCache, iter_features

    mid = model.model_id(max_side=None, min_side=None)
    cache = FeatureCache(tmp_path / "cache", mid)
    list(iter_features(model, [files[1], files[3]], cache=cache))  # two files done by an earlier run
    order = [files[4], files[3], files[0], files[1], files[2]]
    batches = list(iter_features(model, order, batch_size=2, cache=FeatureCache(tmp_path / "cache", mid)))
    rows = [r for batch in batches for r in batch]
    assert [r.index for r in rows] == list(range(len(order)))
    assert [r.path for r in rows] == order
    bad = [r for r in rows if r.features is None]
    assert [r.path.name for r in bad] == ["bad.jpg"] and "bad.jpg" in bad[0].error
    plain = extract(model, order)
    got = np.stack([r.features for r in rows if r.features is not None])
    np.testing.assert_allclose(got, plain.features, atol=1e-5)


def test_scoring_and_extraction_share_one_path(model, files) -> None:
    """ReIQA.score_files gives the regressor exactly the features ``extract`` gives."""
    from reiqa.inference import assemble
    from reiqa.regress import QualityRegressor

    rng = np.random.default_rng(0)
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(10, 2048)), rng.uniform(0, 100, 10))
    scorer = assemble(
        model.quality, model.content, regressor, quality_arch="resnet18", content_arch="resnet18"
    )
    records = list(scorer.score_files(files))
    table = extract(model, files)
    good = [r.score for r in records if r.score is not None]
    np.testing.assert_allclose(good, regressor.predict(table.features), atol=1e-4)
    assert [r.path for r in records] == [str(p) for p in files]
    assert [r.error is None for r in records] == [p.name != "bad.jpg" for p in files]


def test_decoding_ahead_in_a_thread_keeps_order_raises_and_stops() -> None:
    import threading
    import time

    from reiqa.features import in_thread_ahead

    assert list(in_thread_ahead(iter(range(50)), 2)) == list(range(50))

    def failing():
        yield 1
        raise OSError("disk gone")

    got = in_thread_ahead(failing(), 2)
    assert next(got) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(got)

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    ahead = in_thread_ahead(endless(), 3)
    assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()  # a consumer that stops early: the thread ends, having made a few more at most
    assert threading.active_count() == before
    count = len(produced)
    time.sleep(0.05)
    assert len(produced) == count <= 5 + 3 + 2


def test_scores_are_the_same_decoded_ahead_or_in_line(model, files, monkeypatch) -> None:
    from reiqa import features as features_module
    from reiqa.features import FeatureOptions, iter_prepared

    monkeypatch.setattr(features_module, "DECODE_AHEAD", None)

    def batches(ahead: int) -> list[list[int]]:
        got = iter_prepared(files, FeatureOptions(), batch_size=2, ahead=ahead)
        return [[i for i, _ in batch] for batch in got]

    assert (
        batches(2) == batches(0) == [list(range(i, min(i + 2, len(files)))) for i in range(0, len(files), 2)]
    )
    monkeypatch.setattr(features_module, "DECODE_AHEAD", 0)  # $REIQA_DECODE_AHEAD=0
    in_line = extract(model, files)
    monkeypatch.setattr(features_module, "DECODE_AHEAD", 2)
    ahead = extract(model, files)
    np.testing.assert_array_equal(in_line.features, ahead.features)


def test_float32_on_cuda_turns_tensorfloat32_off_only_while_encoding() -> None:
    from reiqa.features import _no_tf32

    cudnn = torch.backends.cudnn
    before = (cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic)
    cudnn.benchmark = not before[1]
    try:
        with _no_tf32():
            assert cudnn.allow_tf32 is False and cudnn.benchmark is (not before[1])
        assert cudnn.allow_tf32 == before[0]
    finally:
        cudnn.benchmark = before[1]


def test_each_engine_decodes_as_far_ahead_as_its_row_says(model, files, monkeypatch) -> None:
    import copy
    from dataclasses import replace

    from reiqa import features as features_module
    from reiqa.engines import ENGINES

    depths = []
    real = features_module.in_thread_ahead
    monkeypatch.setattr(
        features_module, "in_thread_ahead", lambda items, d: depths.append(d) or real(items, d)
    )
    monkeypatch.setattr(features_module, "DECODE_AHEAD", None)
    extract(model, files)
    assert depths == []  # torch's row: in line
    ahead = copy.copy(model)
    ahead.engine = replace(ENGINES["torch"], decode_ahead=3)
    extract(ahead, files)
    assert depths == [3]
    monkeypatch.setattr(features_module, "DECODE_AHEAD", 0)  # $REIQA_DECODE_AHEAD=0 overrides the row
    extract(ahead, files)
    assert depths == [3]


def test_only_torchs_engines_autocast_by_their_precision(model, monkeypatch) -> None:
    import copy

    from reiqa import features as features_module
    from reiqa.engines import ENGINES
    from reiqa.features import encode

    seen = []
    real = torch.autocast

    def recording(device_type, dtype=None, enabled=True, **kw):
        seen.append(dtype if enabled else None)
        return real(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(features_module.torch, "autocast", recording)
    images = textured_images(1, 32, 32)
    for name in ("openvino-bf16", "torch-fp16", "torch"):
        other = copy.copy(model)  # the same modules; only the row read by encode differs
        other.engine = ENGINES[name]
        seen.clear()
        encode(other, images)
        assert set(seen) == {torch.float16 if name == "torch-fp16" else None}, name
