"""The training loop: learning happens, resume is exact, DDP equals one process."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from reiqa.io import save_image
from reiqa.models.checkpoints import load_checkpoint, load_encoder
from reiqa.train.config import CPU_SMALL, ConfigError, TrainConfig
from reiqa.train.loop import run, train_step
from reiqa.train.state import build_state, build_views
from tests.conftest import textured_images

TINY = CPU_SMALL.replace(
    **{
        "data.quality.patch_size": 32,
        "data.quality.n_aug": 2,
        "data.quality.n_scale": 1,
        "data.quality.margin": 0,
        "data.workers": 0,
        "data.max_side": 64,
        "model.proj_dim": 16,
        "model.proj_hidden": 32,
        "model.channels_last": False,
        "moco.queue_size": 24,
        "moco.bn_groups": 2,
        "optim.epochs": 2,
        "optim.warmup_epochs": 0,
        "batch_size": 4,
        "log_every": 1,
        "checkpoint_every": 1,
    }
)


@pytest.fixture(scope="module")
def toy_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    images = textured_images(8, 64, 64, seed=3)
    for i in range(8):
        save_image(images[i], folder / f"{i}.png")
    return folder


def test_steps_on_a_fixed_batch_lower_the_loss() -> None:
    """Repeated steps on the same views. The queue is reset to the same random keys after each
    step: otherwise it fills with the keys of these very instances, which then count as
    negatives for themselves."""
    torch.manual_seed(0)
    cfg = TINY.replace(
        **{"moco.negatives": "queue+same-image", "moco.queue_size": 16, "optim.weight_decay": 0}
    )
    state = build_state(cfg, torch.device("cpu"))
    negatives = state.model.queue.keys.clone()
    views = build_views(cfg)(textured_images(4, 64, 64), generator=torch.Generator().manual_seed(0))
    losses = []
    for step in range(12):
        loss, _ = train_step(state, views, lr=4.0, generator=torch.Generator().manual_seed(step))
        losses.append(loss.item())
        state.model.queue.keys.copy_(negatives)
    assert sum(losses[-3:]) / 3 < 0.85 * sum(losses[:3]) / 3, losses


def _weights(out_dir):
    return load_checkpoint(out_dir / "checkpoint")[1]


def test_a_killed_and_resumed_run_ends_with_the_same_weights(toy_images, tmp_path) -> None:
    run(TINY, [toy_images], tmp_path / "straight", device="cpu", progress=False)
    run(TINY.replace(max_steps=1), [toy_images], tmp_path / "resumed", device="cpu", progress=False)
    assert json.loads((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 1
    run(TINY, [toy_images], tmp_path / "resumed", device="cpu", progress=False, resume=True)
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    final, meta = load_encoder(tmp_path / "straight" / "encoder.json")
    assert meta.arch == "resnet18" and meta.steps == 4 and meta.trained_by == "reiqa pretrain"
    from reiqa.models.checkpoints import export_encoder

    exported, info = load_encoder(export_encoder(tmp_path / "resumed" / "checkpoint", tmp_path / "exported"))
    assert info.steps == 4 and info.exported_from == "resumed/checkpoint"
    for (name, a), b in zip(final.state_dict().items(), exported.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resume_and_overwrite_are_refused_with_a_reason(toy_images, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run(TINY, [toy_images], tmp_path / "none", device="cpu", progress=False, resume=True)
    run(TINY.replace(max_steps=1), [toy_images], tmp_path / "once", device="cpu", progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        run(TINY, [toy_images], tmp_path / "once", device="cpu", progress=False)
    with pytest.raises(ConfigError, match="another config"):
        run(TINY.replace(seed=9), [toy_images], tmp_path / "once", device="cpu", progress=False, resume=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, cfg_json: str, images: str, out: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
        }
    )
    torch.set_num_threads(1)
    run(TrainConfig.from_dict(json.loads(cfg_json)), [images], out, device="cpu", progress=False)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(toy_images, tmp_path) -> None:
    # Each rank normalises its half of the batch; one process with bn_groups=2 does the same.
    cfg = TINY.replace(**{"moco.bn": "plain", "moco.negatives": "queue+batch"})
    mp.spawn(
        _ddp_worker, args=(_free_port(), cfg.to_json(), str(toy_images), str(tmp_path / "ddp")), nprocs=2
    )
    run(cfg, [toy_images], tmp_path / "single", device="cpu", progress=False)
    ddp, single = _weights(tmp_path / "ddp"), _weights(tmp_path / "single")
    # BN running statistics are left out: one process updates them once per group, each rank
    # once per step, so their counters (and, slightly, their averages) differ by design.
    stats = ("num_batches_tracked", "running_mean", "running_var")
    compared = [key for key in single if not key.endswith(stats)]
    assert any(k.startswith("queue.") for k in compared) and len(compared) > 100
    for key in compared:
        torch.testing.assert_close(ddp[key].float(), single[key].float(), atol=2e-4, rtol=1e-3, msg=key)


def test_model_init_warm_starts_query_and_key_backbones(tmp_path) -> None:
    from reiqa.models.backbones import build_backbone
    from reiqa.models.checkpoints import save_encoder

    torch.manual_seed(7)
    source = build_backbone("resnet18")
    save_encoder(tmp_path / "warm", source, arch="resnet18", input_norm="none")
    state = build_state(TINY.replace(**{"model.init": str(tmp_path / "warm.json")}), torch.device("cpu"))
    cold = build_state(TINY, torch.device("cpu"))
    for name, value in source.state_dict().items():
        assert torch.equal(state.model.query.backbone.state_dict()[name], value), name
        assert torch.equal(state.model.key.backbone.state_dict()[name], value), name
    # a random init differs, so the test above can fail
    assert not torch.equal(cold.model.query.backbone.conv1.weight, state.model.query.backbone.conv1.weight)


def test_model_init_refuses_another_arch_or_norm_naming_the_file(tmp_path) -> None:
    from reiqa.errors import CheckpointError
    from reiqa.models.backbones import build_backbone
    from reiqa.models.checkpoints import save_encoder

    save_encoder(
        tmp_path / "lite",
        build_backbone("efficientnet_lite0"),
        arch="efficientnet_lite0",
        input_norm="tf-lite",
    )
    with pytest.raises(CheckpointError, match=r"lite\.json.*'efficientnet_lite0'.*'resnet18'"):
        build_state(TINY.replace(**{"model.init": str(tmp_path / "lite.json")}), torch.device("cpu"))
    save_encoder(tmp_path / "r18", build_backbone("resnet18"), arch="resnet18", input_norm="imagenet")
    with pytest.raises(CheckpointError, match=r"r18\.json.*input_norm 'imagenet'"):
        build_state(TINY.replace(**{"model.init": str(tmp_path / "r18.json")}), torch.device("cpu"))
    with pytest.raises(CheckpointError, match=r"missing\.safetensors: warm-start weights not found"):
        build_state(TINY.replace(**{"model.init": str(tmp_path / "missing.json")}), torch.device("cpu"))
    # a bare safetensors file (a bundle's content.safetensors) is taken as it is
    from safetensors.torch import save_file

    save_file(build_backbone("resnet18").state_dict(), str(tmp_path / "bare.safetensors"))
    build_state(TINY.replace(**{"model.init": str(tmp_path / "bare.safetensors")}), torch.device("cpu"))
