"""Everything a training step needs, built from a config: the MoCo model, the query encoder (wrapped
in DDP on several ranks), the optimizer, the grad scaler and the step counter (``TrainState``), and
the view maker (``build_views``).

``build_state(cfg, device)`` is the one place where the state is set up: ``reiqa.train.loop.run``
and the benchmarks use it, so a benchmark times exactly what training runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from reiqa import dist
from reiqa.models.checkpoints import warm_start
from reiqa.models.moco import Encoder, MoCo
from reiqa.train.config import TrainConfig, effective_lr
from reiqa.train.optim import build_optimizer
from reiqa.views import ContentViews, QualityViews

#: views(images, generator=g) -> (N, V, 6, P, P): query crops in channels 0-2, key crops in 3-5
ViewMaker = Callable[..., Tensor]


@dataclass
class TrainState:
    """The mutable state of a run. ``query`` is ``model.query``, wrapped in DDP on several ranks;
    ``step`` counts optimisation steps over the whole run."""

    cfg: TrainConfig
    device: torch.device
    model: MoCo
    query: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int = 0


def build_model(cfg: TrainConfig) -> MoCo:
    """The MoCo model of ``cfg``, randomly initialised from the global RNG; with ``model.init``
    the backbone (of the query and key encoder alike) starts from that file's weights."""
    encoder = Encoder(
        cfg.model.arch,
        proj_hidden=cfg.model.proj_hidden,
        proj_dim=cfg.model.proj_dim,
        input_norm=cfg.model.input_norm,
    )
    if cfg.model.init is not None:
        warm_start(encoder.backbone, cfg.model.init, arch=cfg.model.arch, input_norm=cfg.model.input_norm)
    return MoCo(
        encoder,
        queue_size=cfg.moco.queue_size,
        momentum=cfg.moco.momentum,
        shuffle_bn=cfg.moco.bn == "shuffle",
        bn_groups=cfg.moco.bn_groups,
    )


def build_views(cfg: TrainConfig) -> ViewMaker:
    """The view maker of ``cfg.data``: quality views (V = versions x scales) or content views
    (V = 1)."""
    if cfg.data.views == "quality":
        return QualityViews(cfg.data.quality)
    content = ContentViews(cfg.data.content)
    return lambda images, generator=None: content(images, generator=generator).unsqueeze(1)


def build_state(cfg: TrainConfig, device: torch.device) -> TrainState:
    """A fresh state on ``device``: weights (and the queue's initial keys) drawn from
    ``cfg.seed``, channels-last if asked, SyncBN when several ranks train with ``moco.bn='sync'``,
    the optimizer at the peak learning rate, a grad scaler for fp16. ``wrap_for_ranks`` adds DDP
    once the weights are final (after a resume)."""
    torch.manual_seed(cfg.seed)  # weight initialisation and the queue's initial keys
    model = build_model(cfg).to(device)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.moco.bn == "sync" and dist.world_size() > 1:
        model.query = nn.SyncBatchNorm.convert_sync_batchnorm(model.query)
        model.key = nn.SyncBatchNorm.convert_sync_batchnorm(model.key)
    optimizer = build_optimizer(
        model.query,
        name=cfg.optim.name,
        lr=effective_lr(cfg),
        weight_decay=cfg.optim.weight_decay,
        momentum=cfg.optim.momentum,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    return TrainState(cfg, device, model, model.query, optimizer, scaler)


def wrap_for_ranks(state: TrainState) -> None:
    """Wrap the query encoder in DDP when several ranks train (after the weights are final)."""
    if dist.world_size() > 1:
        ids = [state.device.index] if state.device.type == "cuda" else None
        state.query = DistributedDataParallel(state.model.query, device_ids=ids)
