"""Our checkpoints round-trip; the official release format imports; bad files say why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reiqa.models.backbones import build_backbone
from reiqa.models.checkpoints import (
    CheckpointError,
    EncoderDescription,
    _read_description,
    find_checkpoint,
    load_checkpoint,
    load_encoder,
    save_checkpoint,
    save_encoder,
)
from reiqa.models.importers import import_official
from reiqa.models.moco import Encoder, MoCo


def test_checkpoint_round_trip_and_atomic_swap(tmp_path) -> None:
    torch.manual_seed(0)
    model = MoCo(Encoder("resnet18", proj_dim=8), queue_size=16)
    target = tmp_path / "checkpoint"
    save_checkpoint(target, model=model, config_json='{"a": 1}', state={"step": 3, "t": torch.ones(2)})
    save_checkpoint(target, model=model, config_json='{"a": 2}', state={"step": 4, "t": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temp or old dirs left
    config_json, weights, state = load_checkpoint(target)
    assert config_json == '{"a": 2}' and state["step"] == 4
    fresh = MoCo(Encoder("resnet18", proj_dim=8), queue_size=16)
    fresh.load_state_dict(weights)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_an_interrupted_swap_falls_back_to_the_previous_checkpoint(tmp_path) -> None:
    model = MoCo(Encoder("resnet18", proj_dim=8), queue_size=4)
    target = tmp_path / "checkpoint"
    save_checkpoint(target, model=model, config_json="{}", state={"step": 1})
    target.rename(tmp_path / "checkpoint.old")  # a crash between the two renames
    assert find_checkpoint(target) == tmp_path / "checkpoint.old"
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "elsewhere")


def test_encoder_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    backbone = build_backbone("resnet18")
    save_encoder(tmp_path / "enc", backbone, arch="resnet18", input_norm="none", info={"steps": 5})
    loaded, meta = load_encoder(tmp_path / "enc.json")
    assert meta.arch == "resnet18" and meta.steps == 5 and meta.input_norm == "none"
    x = torch.rand(1, 3, 32, 32)
    backbone.eval(), loaded.eval()
    torch.testing.assert_close(backbone(x), loaded(x))


def test_encoder_descriptions_are_typed_and_keep_unknown_keys(tmp_path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "models" / "quality-cpu-small" / "encoder.json"
    if shipped.is_file():
        about = _read_description(shipped)
        assert (about.arch, about.input_norm, about.encoder, about.steps) == (
            "resnet18",
            "none",
            "quality",
            675,
        )
        assert set(about.extra) == {"dtype", "config"} and about.to_dict() == json.loads(shipped.read_text())
    backbone = build_backbone("resnet18")
    path = save_encoder(tmp_path / "enc", backbone, arch="resnet18", input_norm="none", info={"note": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.json", "enc.safetensors"]  # no temp files
    assert isinstance(load_encoder(path)[1], EncoderDescription)
    raw = json.loads(path.read_text())
    assert raw == {
        "format": "reiqa-encoder",
        "version": 1,
        "arch": "resnet18",
        "input_norm": "none",
        "note": "x",
    }
    del raw["input_norm"]  # an older file
    path.write_text(json.dumps(raw))
    assert load_encoder(path)[1].input_norm is None
    path.write_text(json.dumps({**raw, "steps": "many"}))
    with pytest.raises(CheckpointError, match=r"enc\.json: steps must be int or null, got 'many'"):
        load_encoder(path)
    path.write_text(json.dumps({**raw, "format": "other"}))
    with pytest.raises(CheckpointError, match=r"enc\.json: not a reiqa encoder description"):
        load_encoder(path)
    with pytest.raises(CheckpointError, match=r"enc2\.json: steps must be int or null"):
        save_encoder(tmp_path / "enc2", backbone, arch="resnet18", input_norm="none", info={"steps": "x"})
    assert not (tmp_path / "enc2.json").exists()


def _official_file(path, arch: str = "resnet18", *, drop: str | None = None) -> dict:
    """A file laid out as the official release: DataParallel keys module.encoder.* / module.head.*."""
    torch.manual_seed(1)
    backbone = build_backbone(arch)
    dim = 512 if arch == "resnet18" else 2048
    model = {f"module.encoder.{k}": v for k, v in backbone.state_dict().items()}
    model.update(
        {
            "module.head.0.weight": torch.randn(dim, dim),
            "module.head.0.bias": torch.zeros(dim),
            "module.head.2.weight": torch.randn(128, dim),
            "module.head.2.bias": torch.zeros(128),
        }
    )
    if drop:
        model.pop(drop)
    torch.save({"model": model, "epoch": 40, "contrast": {"memory": torch.randn(4, 128)}}, path)
    return backbone.state_dict()


def test_official_checkpoint_imports_into_the_torchvision_backbone(tmp_path) -> None:
    path = tmp_path / "quality_aware.pth"
    expected = _official_file(path)
    backbone, head = import_official(path, arch="resnet18")
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert sorted(head) == ["0.bias", "0.weight", "2.bias", "2.weight"]


def test_official_checkpoint_errors_name_the_keys(tmp_path) -> None:
    path = tmp_path / "broken.pth"
    _official_file(path, drop="module.encoder.layer4.1.bn2.weight")
    with pytest.raises(CheckpointError, match=r"1 missing \(e\.g\. \['layer4\.1\.bn2\.weight'\]\)"):
        import_official(path, arch="resnet18")
    _official_file(path)
    with pytest.raises(CheckpointError, match=r"other shapes|unexpected"):
        import_official(path, arch="resnet50")  # a ResNet-18 file read as ResNet-50
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        import_official(tmp_path / "junk.pth")
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="'model'"):
        import_official(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError):
        import_official(tmp_path / "missing.pth")
