from __future__ import annotations

import json
from pathlib import Path

import pytest

from reiqa.train.config import (
    CPU_SMALL,
    PAPER,
    PRESETS,
    ConfigError,
    TrainConfig,
    effective_lr,
    load_config,
    preset,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_presets_round_trip_through_json_and_match_the_shipped_files() -> None:
    for name, cfg in PRESETS.items():
        assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
        assert TrainConfig.from_json(CONFIGS / f"{name}.json") == cfg, name


def test_paper_preset_is_the_readme_command() -> None:
    assert (
        PAPER.data.quality.n_aug,
        PAPER.data.quality.n_scale,
        PAPER.data.quality.patch_size,
        PAPER.batch_size,
    ) == (
        11,
        2,
        160,
        630,
    )
    assert PAPER.moco.queue_size == 65536 and PAPER.moco.temperature == 0.2 and PAPER.optim.epochs == 40
    assert abs(effective_lr(PAPER) - 11.8125) < 1e-9  # "0.6 with batch scaling", the README's 12


def test_overrides_and_errors(tmp_path) -> None:
    cfg = load_config(preset_name="cpu-small", overrides=["optim.epochs=3", "moco.negatives=queue", "seed=5"])
    assert cfg.optim.epochs == 3 and cfg.moco.negatives == "queue" and cfg.seed == 5
    assert cfg.model == CPU_SMALL.model
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(preset_name="cpu-small", overrides=["optim.epochs"])
    with pytest.raises(ConfigError, match="must be >= 1"):
        load_config(preset_name="cpu-small", overrides=["optim.epochs=0"])
    with pytest.raises(ConfigError, match="content encoder"):
        load_config(encoder="quality", preset_name="content")
    with pytest.raises(KeyError, match="cpu-small"):
        preset("cpu_smal")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"optim": {"epochz": 3}}))
    with pytest.raises(ConfigError, match=r"bad\.json.*epochz"):
        TrainConfig.from_json(bad)
    assert load_config(encoder="content").encoder == "content"


def _old_layout(cfg: TrainConfig) -> dict:
    """``cfg`` as a JSON dict in the layout before the view configs were nested."""
    raw = json.loads(cfg.to_json())
    data = raw["data"]
    quality, content = data.pop("quality"), data.pop("content")
    raw["data"] = {**data, **quality, "content_size": content["size"]}
    return raw


def test_an_old_layout_config_is_converted_with_a_warning_that_says_how(tmp_path) -> None:
    path = tmp_path / "old.json"
    for cfg in PRESETS.values():
        path.write_text(json.dumps(_old_layout(cfg)))
        with pytest.warns(UserWarning, match=r"old\.json.*data\.quality.*data\.content\.size"):
            assert TrainConfig.from_json(path) == cfg


def test_every_field_is_checked_when_the_config_is_built() -> None:
    with pytest.raises(
        ConfigError, match=r"data\.quality\.patch_size.*moved|moved.*data\.quality\.patch_size"
    ):
        load_config(preset_name="cpu-small", overrides=["data.patch_size=64"])
    with pytest.raises(
        ConfigError, match=r"data\.quality: patch_size must be >= 8"
    ):  # checked by the view config
        load_config(preset_name="cpu-small", overrides=["data.quality.patch_size=4"])
    with pytest.raises(ConfigError, match=r"optim\.epochs must be int, got '3'"):
        TrainConfig.from_dict({"optim": {"epochs": "3"}})
    with pytest.raises(ConfigError, match=r"batch_size must be int, got True"):
        TrainConfig.from_dict({"batch_size": True})
    with pytest.raises(ConfigError, match=r"data\.content: scale must satisfy"):
        load_config(encoder="content", overrides=["data.content.scale=[0.5, 2]"])
    with pytest.raises(ConfigError, match=r"model\.arch: unknown .resnet99."):
        load_config(preset_name="cpu-small", overrides=["model.arch=resnet99"])
    with pytest.raises(ConfigError, match=r"max_side must be None or >= 2 \* data\.quality\.patch_size"):
        load_config(preset_name="cpu-small", overrides=["data.max_side=100"])
    cfg = load_config(encoder="content", overrides=["data.content.scale=[0.5, 1.0]", "data.content.size=64"])
    assert cfg.data.content.scale == (0.5, 1.0) and cfg.data.content.size == 64
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg  # lists come back as tuples


def test_there_is_one_config_error() -> None:
    from reiqa import errors, views
    from reiqa.train import config

    assert config.ConfigError is errors.ConfigError
    with pytest.raises(errors.ConfigError):
        views.QualityViewConfig(patch_size=2)
    with pytest.raises(errors.ConfigError):
        views.ContentViewConfig(size=0)
