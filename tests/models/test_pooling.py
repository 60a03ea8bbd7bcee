"""Stage pooling (FeatureOptions.pooling 'gap+stages'): the averages of the last stages' ends
after the head's, for both backbone families, through model folders and the ONNX engines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from reiqa.errors import ConfigError, ModelError
from reiqa.features import FeatureModel, FeatureOptions
from reiqa.inference import ScoreSpec, assemble, load
from reiqa.models.backbones import build_backbone, set_pooling
from reiqa.regress import QualityRegressor
from tests.conftest import randomize_batchnorm, textured_images


def _with_random_statistics(net: torch.nn.Module) -> torch.nn.Module:
    randomize_batchnorm(net)
    return net.eval()


def _hooked_means(net: torch.nn.Module, modules: list[torch.nn.Module], x: torch.Tensor) -> list:
    """The global averages of ``modules``' outputs, taken by forward hooks (an independent path)."""
    kept: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: kept.append(out.mean(dim=(2, 3)))) for m in modules]
    try:
        net(x)
    finally:
        for h in hooks:
            h.remove()
    return kept


@torch.no_grad()
def test_lite0_stage_pooling_is_the_head_then_stages_5_6_7() -> None:
    torch.manual_seed(0)
    net = _with_random_statistics(build_backbone("efficientnet_lite0"))
    x = torch.rand(2, 3, 72, 88)
    gap = net(x)
    stage_ends = [net.blocks[i] for i in (10, 14, 15)]  # 1+2+2+3+3 = 11 blocks, then 4, then 1
    expected = _hooked_means(net, [*stage_ends, net.head], x)
    set_pooling(net, "gap+stages")
    assert net.feature_dim == 1280 + 112 + 192 + 320
    out = net(x)
    assert out.shape == (2, net.feature_dim)
    torch.testing.assert_close(out[:, :1280], gap)
    torch.testing.assert_close(out, torch.cat([expected[-1], *expected[:-1]], dim=1))
    set_pooling(net, "gap")  # and back
    assert net.feature_dim == 1280
    torch.testing.assert_close(net(x), gap)


@torch.no_grad()
@pytest.mark.parametrize(("arch", "widths"), [("resnet18", (512, 128, 256)), ("resnet50", (2048, 512, 1024))])
def test_resnet_stage_pooling_adds_layer2_and_layer3(arch: str, widths: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = _with_random_statistics(build_backbone(arch))
    x = torch.rand(1, 3, 64, 64)
    gap = net(x)
    expected = _hooked_means(net, [net.layer2, net.layer3], x)
    set_pooling(net, "gap+stages")
    assert net.feature_dim == sum(widths)
    torch.testing.assert_close(net(x), torch.cat([gap, *expected], dim=1))


def test_unknown_pooling_and_modules_without_stages_are_refused() -> None:
    with pytest.raises(ConfigError, match="pooling must be one of"):
        set_pooling(build_backbone("resnet18"), "max")
    with pytest.raises(ConfigError, match=r"features\.pooling"):
        FeatureOptions(pooling="gap+std")
    with pytest.raises(ConfigError, match="no stage outputs"):
        set_pooling(torch.nn.Linear(3, 3), "gap+stages")
    assert set_pooling(lin := torch.nn.Linear(3, 3), "gap") is lin


def test_feature_model_ids_blocks_and_with_pooling_keep_the_original() -> None:
    torch.manual_seed(0)
    net = FeatureModel(build_backbone("resnet18"), build_backbone("efficientnet_lite0"))
    staged = net.with_pooling("gap+stages")
    assert [w for _, w in net.blocks()] == [512, 512, 1280, 1280]
    assert [w for _, w in staged.blocks()] == [896, 896, 1904, 1904]
    assert staged.model_id(max_side=None, min_side=None) != net.model_id(max_side=None, min_side=None)
    assert staged.weights_hash().hexdigest() == net.weights_hash().hexdigest()  # same weights
    x = textured_images(1, 48, 64)
    plain, both = net(x), staged(x)
    assert plain.shape[1] == 3584 and both.shape[1] == 5600
    torch.testing.assert_close(both[:, :512], plain[:, :512])  # quality full: the head's average first
    assert net.with_pooling("gap") is net
    assert net.quality.taps == () and net.quality.feature_dim == 512  # the original is untouched


def test_card_keeps_pooling_and_old_cards_stay_as_they_were() -> None:
    assert "pooling" not in FeatureOptions().to_dict()  # cards of Re-IQA's pooling are unchanged
    options = FeatureOptions(max_side=512, pooling="gap+stages")
    assert FeatureOptions.from_dict(options.to_dict()) == options
    assert FeatureOptions.from_dict({"max_side": None, "min_side": None, "compat": False}).pooling == "gap"


def _staged_model_folder(folder: Path) -> Path:
    torch.manual_seed(1)
    quality = _with_random_statistics(build_backbone("resnet18"))
    content = _with_random_statistics(build_backbone("efficientnet_lite0"))
    width = 2 * 896 + 2 * 1904
    rng = np.random.default_rng(0)
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(16, width)), rng.uniform(0, 100, 16))
    model = assemble(
        quality,
        content,
        regressor,
        quality_arch="resnet18",
        content_arch="efficientnet_lite0",
        content_norm="tf-lite",
        score=ScoreSpec(range=(0, 100)),
        features=FeatureOptions(pooling="gap+stages"),
    )
    return model.save(folder)


def test_a_staged_model_folder_round_trips_and_scores(tmp_path: Path) -> None:
    folder = _staged_model_folder(tmp_path / "staged")
    card = json.loads((folder / "model.json").read_text())
    assert card["features"]["pooling"] == "gap+stages"
    model = load(folder)
    assert model.options.pooling == "gap+stages" and model.features.pooling == "gap+stages"
    image = textured_images(1, 60, 80, seed=3)[0]
    x = image[None]
    expected = float(model.regressor.predict(model.features(x).numpy())[0])
    assert model.score(image) == pytest.approx(expected, abs=1e-4)
    # the same weights read as a 'gap' card no longer fit the regressor: the width check names both
    card["features"].pop("pooling")
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"fitted on 5600 features, these encoders give 3584"):
        load(folder)


def test_onnx_graphs_carry_the_stage_pooling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxscript", reason="pip install 'reiqa[onnx]'")
    pytest.importorskip("onnxruntime", reason="pip install 'reiqa[onnx]'")
    monkeypatch.setenv("REIQA_CACHE", str(tmp_path / "cache"))
    folder = _staged_model_folder(tmp_path / "staged")
    torch_model, ort_model = load(folder), load(folder, backend="onnxruntime")
    assert ort_model.model_id == torch_model.model_id
    x = textured_images(2, 45, 67, seed=5)
    torch.testing.assert_close(ort_model.features(x), torch_model.features(x), atol=1e-3, rtol=1e-3)
    graphs = os.listdir(tmp_path / "cache" / "onnx")
    assert graphs == [torch_model.features.model_id(max_side=None, min_side=None)]
