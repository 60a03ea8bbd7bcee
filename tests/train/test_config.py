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
