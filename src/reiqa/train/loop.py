"""The pre-training loop: ``run(cfg, images, out_dir)``.

One process on CPU or CUDA, or many under ``torchrun`` (DDP; NCCL on GPU, gloo on CPU). AMP via
``torch.autocast`` (bf16, or fp16 with a GradScaler). Resumable: ``resume=True`` continues from
``out_dir/checkpoint`` and ends with the same weights as a run that never stopped.

Outputs in ``out_dir``: ``config.json``, ``checkpoint/`` (see ``reiqa.train.checkpointing``),
``metrics.jsonl`` and ``tb/`` (see ``reiqa.train.metrics``), and at the end
``encoder.safetensors`` + ``encoder.json``: the query encoder's backbone, which is what feature
extraction uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from reiqa import dist, inputs
from reiqa.atomic import write_text_atomic
from reiqa.errors import ConfigError
from reiqa.extras import require
from reiqa.models import checkpoints
from reiqa.models.moco import batch_negative_mask, info_nce
from reiqa.runtime import pick_device
from reiqa.train import checkpointing
from reiqa.train import data as train_data
from reiqa.train.config import TrainConfig, effective_lr
from reiqa.train.metrics import MetricsLogger
from reiqa.train.optim import lr_at, official_lr_at, set_lr
from reiqa.train.state import TrainState, ViewMaker, build_state, build_views, wrap_for_ranks

__all__ = ["RunResult", "run", "train_step"]


@dataclass
class RunResult:
    out_dir: Path
    step: int
    final_loss: float | None


class _ItemViews:
    """Picklable per-image transform for DataLoader workers: image -> (V, 6, P, P)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.views: ViewMaker | None = None

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        if self.views is None:
            self.views = build_views(self.cfg)
        return self.views([image], generator=generator)[0]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def learning_rate(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate of ``step`` under the config's schedule."""
    peak = effective_lr(cfg)
    if cfg.optim.schedule == "official":
        return official_lr_at(step, base_lr=peak, steps_per_epoch=steps_per_epoch, epochs=cfg.optim.epochs)
    warmup = round(cfg.optim.warmup_epochs * steps_per_epoch)
    total = steps_per_epoch * cfg.optim.epochs
    return lr_at(
        step, base_lr=peak, total_steps=total, warmup_steps=warmup, min_lr_ratio=cfg.optim.min_lr_ratio
    )


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(train_data.item_seed(seed, -2, step))


def train_step(
    state: TrainState, views: Tensor, *, lr: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One optimisation step on views (B, V, 6, P, P); returns (loss, accuracy), detached.

    Order: set the learning rate, zero the gradients, forward and loss under autocast, backward
    through the scaler (unscaled before clipping), step, EMA of the key encoder, queue push."""
    cfg, model, optimizer, scaler = state.cfg, state.model, state.optimizer, state.scaler
    b, v = views.shape[:2]
    flat = views.flatten(0, 1)  # (B*V, 6, P, P)
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    x_q = flat[:, :3].contiguous(memory_format=fmt)
    x_k = flat[:, 3:].contiguous(memory_format=fmt)
    image_ids = torch.arange(b, device=views.device).repeat_interleave(v)
    set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    with torch.autocast(views.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        q, k = model(x_q, x_k, query=state.query, generator=generator)
        mask = batch_negative_mask(image_ids, cfg.moco.negatives, dist.world_size(), dist.rank())
        batch_keys = dist.concat_all_gather(k) if mask is not None else None
        loss, accuracy = info_nce(
            q, k, model.queue.keys.clone(), cfg.moco.temperature, batch_keys=batch_keys, batch_mask=mask
        )
    scaler.scale(loss).backward()
    if cfg.optim.clip_grad_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.query.parameters(), cfg.optim.clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    model.momentum_update()
    model.queue.push(k)
    return loss.detach(), accuracy.detach()


def run(
    cfg: TrainConfig,
    images: Sequence[str | Path],
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> RunResult:
    """Pre-train an encoder with MoCo-v2 on the given image files/folders/CSV lists.

    Raises:
        FileNotFoundError: resume=True and out_dir has no checkpoint.
        ConfigError: out_dir already holds a checkpoint and resume is False, or the images are
            fewer than one batch.
    """
    out_dir = Path(out_dir)
    # every rank, before any work: TensorBoard logs (rank 0's) need the train extra
    require("torch.utils.tensorboard", "train", "reiqa pretrain", package="tensorboard")
    rank_device, started = dist.start_from_env()
    try:
        return _run(
            cfg, images, out_dir, resume=resume, device=rank_device or pick_device(device), progress=progress
        )
    finally:
        if started:
            dist.stop()


def _run(
    cfg: TrainConfig,
    images: Sequence[str | Path],
    out_dir: Path,
    *,
    resume: bool,
    device: torch.device,
    progress: bool,
) -> RunResult:
    ckpt_dir = checkpointing.check_out_dir(out_dir, resume=resume)
    paths = inputs.list_training_images(images)
    steps_per_epoch = train_data.StepSampler.steps_per_epoch(len(paths), cfg.batch_size)
    if steps_per_epoch < 1:
        raise ConfigError(
            f"{len(paths)} images are fewer than one batch of {cfg.batch_size}; lower batch_size"
        )
    total_steps = steps_per_epoch * cfg.optim.epochs
    stop_at = total_steps if cfg.max_steps is None else min(total_steps, cfg.max_steps)

    state = build_state(cfg, device)
    if resume:
        checkpointing.restore(state, ckpt_dir)
    wrap_for_ranks(state)
    if dist.rank() == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "config.json", cfg.to_json())
    logger = MetricsLogger(out_dir, step=state.step, stop_at=stop_at, progress=progress)
    try:
        last_loss = _train(state, paths, ckpt_dir, logger, steps_per_epoch=steps_per_epoch, stop_at=stop_at)
    finally:
        logger.close()
    if dist.rank() == 0 and state.step >= total_steps:
        checkpoints.save_encoder(
            out_dir / "encoder",
            state.model.query.backbone,
            arch=cfg.model.arch,
            input_norm=cfg.model.input_norm,
            info={"encoder": cfg.encoder, "steps": state.step, "trained_by": "reiqa pretrain"},
        )
    return RunResult(out_dir, state.step, last_loss)


def _views_on_device(state: TrainState) -> bool:
    where = state.cfg.data.views_on
    return where == "device" or (where == "auto" and state.device.type == "cuda")


def _batches(state: TrainState, dataset: train_data.ImageFiles, steps_per_epoch: int) -> Iterator[dict]:
    """Loader batches from the current step on, epoch after epoch (each rank its share)."""
    cfg, world = state.cfg, dist.world_size()
    while True:
        epoch, in_epoch = divmod(state.step, steps_per_epoch)
        dataset.set_epoch(epoch)
        sampler = train_data.StepSampler(
            len(dataset),
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            epoch=epoch,
            rank=dist.rank(),
            world=world,
            start_step=in_epoch,
        )
        yield from DataLoader(
            dataset,
            batch_size=cfg.batch_size // world,
            sampler=sampler,
            num_workers=cfg.data.workers,
            collate_fn=train_data.collate,
            worker_init_fn=_worker_init if cfg.data.workers else None,
            persistent_workers=False,
            pin_memory=state.device.type == "cuda",
        )


def _train(
    state: TrainState,
    paths: list[Path],
    ckpt_dir: Path,
    logger: MetricsLogger,
    *,
    steps_per_epoch: int,
    stop_at: int,
) -> float | None:
    """Steps until ``stop_at``: views (in loader workers or batched on the device), a train
    step, logging every ``log_every`` steps, a checkpoint every ``checkpoint_every`` steps, at
    each epoch's end and at the stop. Returns the last logged loss."""
    cfg = state.cfg
    device_views = build_views(cfg) if _views_on_device(state) else None
    dataset = train_data.ImageFiles(
        paths,
        max_side=cfg.data.max_side,
        seed=cfg.seed,
        transform=None if device_views is not None else _ItemViews(cfg),
    )
    seen_failures: set[str] = set()
    skipped, last_loss = 0, None
    state.model.train()
    if state.step >= stop_at:
        return None
    for batch in _batches(state, dataset, steps_per_epoch):
        skipped += train_data.warn_failures(batch["failures"], seen_failures)
        generator = _step_generator(cfg.seed, state.step)
        if device_views is not None:
            views = device_views(
                [im.to(state.device, non_blocking=True) for im in batch["data"]], generator=generator
            )
        else:
            views = batch["data"].to(state.device, non_blocking=True)
        lr = learning_rate(cfg, state.step, steps_per_epoch)
        loss, accuracy = train_step(state, views, lr=lr, generator=generator)
        state.step += 1
        logger.count(len(views) * dist.world_size())
        if state.step % cfg.log_every == 0 or state.step == stop_at:
            last_loss = float(loss)
            values = {"epoch": state.step / steps_per_epoch, "loss": last_loss, "accuracy": float(accuracy)}
            logger.log(state.step, {**values, "lr": lr, "skipped_images": skipped})
        logger.advance()
        if (
            state.step % cfg.checkpoint_every == 0
            or state.step % steps_per_epoch == 0
            or state.step == stop_at
        ):
            checkpointing.save(state, ckpt_dir, steps_per_epoch=steps_per_epoch)
        if state.step >= stop_at:
            break
    return last_loss
