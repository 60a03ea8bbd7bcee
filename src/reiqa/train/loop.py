"""The pre-training loop: ``run(cfg, images, out_dir)``.

One process on CPU or CUDA, or many under ``torchrun`` (DDP; NCCL on GPU, gloo on CPU). AMP via
``torch.autocast`` (bf16, or fp16 with a GradScaler). Resumable: ``resume=True`` continues from
``out_dir/checkpoint`` and ends with the same weights as a run that never stopped.

Outputs in ``out_dir``: ``checkpoint/`` (see reiqa.models.checkpoints), ``metrics.jsonl`` (one
line per logged step), ``tb/`` (TensorBoard scalars), and at the end ``encoder.safetensors`` +
``encoder.json``: the query encoder's backbone, which is what feature extraction uses.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from reiqa import inputs
from reiqa.dist import concat_all_gather, rank, world_size
from reiqa.models import checkpoints
from reiqa.models.moco import Encoder, MoCo, batch_negative_mask, info_nce
from reiqa.train import data as train_data
from reiqa.train.config import ConfigError, TrainConfig, effective_lr
from reiqa.train.optim import build_optimizer, lr_at, official_lr_at, set_lr

CHECKPOINT = "checkpoint"


@dataclass
class RunResult:
    out_dir: Path
    step: int
    final_loss: float | None


def _setup_distributed() -> tuple[torch.device | None, bool]:
    """Initialise torch.distributed from torchrun's environment; returns (device hint, started)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return None, False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank), True
    dist.init_process_group("gloo")
    return torch.device("cpu"), True


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: TrainConfig) -> MoCo:
    encoder = Encoder(
        cfg.model.arch,
        proj_hidden=cfg.model.proj_hidden,
        proj_dim=cfg.model.proj_dim,
        input_norm=cfg.model.input_norm,
    )
    return MoCo(
        encoder,
        queue_size=cfg.moco.queue_size,
        momentum=cfg.moco.momentum,
        shuffle_bn=cfg.moco.bn == "shuffle",
        bn_groups=cfg.moco.bn_groups,
    )


def build_views(cfg: TrainConfig):
    """The view maker: called as views(images, generator=g) -> (N, V, 6, P, P)."""
    d = cfg.data
    if d.views == "quality":
        from reiqa.views.quality import QualityViewConfig, QualityViews

        return QualityViews(
            QualityViewConfig(
                patch_size=d.patch_size,
                n_aug=d.n_aug,
                n_scale=d.n_scale,
                n_distortions=d.n_distortions,
                swap_crops=d.swap_crops,
                min_overlap=d.min_overlap,
                max_overlap=d.max_overlap,
                margin=d.margin,
                region=d.region,
                compat=d.compat,
            )
        )
    from reiqa.views.content import ContentViewConfig, ContentViews

    content = ContentViews(ContentViewConfig(size=d.content_size))
    return lambda images, generator=None: content(images, generator=generator).unsqueeze(1)


class _ItemViews:
    """Picklable per-image transform for DataLoader workers: image -> (V, 6, P, P)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.views = None

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        if self.views is None:
            self.views = build_views(self.cfg)
        return self.views([image], generator=generator)[0]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _lr(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    peak = effective_lr(cfg)
    total = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.schedule == "official":
        return official_lr_at(step, base_lr=peak, steps_per_epoch=steps_per_epoch, epochs=cfg.optim.epochs)
    warmup = round(cfg.optim.warmup_epochs * steps_per_epoch)
    return lr_at(
        step, base_lr=peak, total_steps=total, warmup_steps=warmup, min_lr_ratio=cfg.optim.min_lr_ratio
    )


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(train_data.item_seed(seed, -2, step))


def train_step(
    model: MoCo,
    query: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    views: Tensor,
    cfg: TrainConfig,
    *,
    lr: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """One optimisation step on views (B, V, 6, P, P); returns (loss, accuracy), detached."""
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
        q, k = model(x_q, x_k, query=query, generator=generator)
        mask = batch_negative_mask(image_ids, cfg.moco.negatives, world_size(), rank())
        batch_keys = concat_all_gather(k) if mask is not None else None
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
        ConfigError: out_dir already holds a checkpoint and resume is False.
    """
    out_dir = Path(out_dir)
    dist_device, started = _setup_distributed()
    try:
        return _run(
            cfg, images, out_dir, resume=resume, device=dist_device or pick_device(device), progress=progress
        )
    finally:
        if started:
            dist.destroy_process_group()


def _run(
    cfg: TrainConfig,
    images: Sequence[str | Path],
    out_dir: Path,
    *,
    resume: bool,
    device: torch.device,
    progress: bool,
) -> RunResult:
    world, me = world_size(), rank()
    main = me == 0
    ckpt_dir = out_dir / CHECKPOINT
    existing = checkpoints.find_checkpoint(ckpt_dir)
    if resume and existing is None:
        raise FileNotFoundError(f"{out_dir}: nothing to resume, no checkpoint in {ckpt_dir}")
    if not resume and existing is not None:
        raise ConfigError(
            f"{out_dir} already holds a checkpoint; pass --resume to continue it or choose another --out"
        )

    paths = inputs.list_training_images(images)
    steps_per_epoch = train_data.StepSampler.steps_per_epoch(len(paths), cfg.batch_size)
    if steps_per_epoch < 1:
        raise ConfigError(
            f"{len(paths)} images are fewer than one batch of {cfg.batch_size}; lower batch_size"
        )
    total_steps = steps_per_epoch * cfg.optim.epochs

    torch.manual_seed(cfg.seed)  # weight initialisation and the queue's initial keys
    model = build_model(cfg).to(device)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.moco.bn == "sync" and world > 1:
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
    step = 0
    if resume:
        saved_json, weights, state = checkpoints.load_checkpoint(ckpt_dir)
        saved = TrainConfig.from_dict(json.loads(saved_json))
        if saved.replace(max_steps=None) != cfg.replace(max_steps=None):
            raise ConfigError(
                f"{ckpt_dir}: the checkpoint was trained with another config; resume with the same one"
            )
        checkpoints.load_state_strict(model, {k: v.to(device) for k, v in weights.items()}, ckpt_dir)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
    query: nn.Module = model.query
    if world > 1:
        query = DistributedDataParallel(
            model.query, device_ids=[device.index] if device.type == "cuda" else None
        )

    views_on = cfg.data.views_on
    if views_on == "auto":
        views_on = "device" if device.type == "cuda" else "workers"
    device_views = build_views(cfg) if views_on == "device" else None
    dataset = train_data.ImageFiles(
        paths,
        max_side=cfg.data.max_side,
        seed=cfg.seed,
        transform=_ItemViews(cfg) if views_on == "workers" else None,
    )

    writer = None
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(cfg.to_json(), encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out_dir / "tb"), purge_step=step)
        except ImportError:  # tensorboard is a dependency, but a minimal install may lack it
            writer = None
    metrics_path = out_dir / "metrics.jsonl"
    bar = None
    if main and progress:
        from tqdm import tqdm

        bar = tqdm(
            total=total_steps if cfg.max_steps is None else min(total_steps, cfg.max_steps),
            initial=step,
            unit="step",
            dynamic_ncols=True,
        )

    def save() -> None:
        if main:
            state = {
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": step // steps_per_epoch,
            }
            checkpoints.save_checkpoint(ckpt_dir, model=model, config_json=cfg.to_json(), state=state)
        if world > 1:
            dist.barrier()

    seen_failures: set[str] = set()
    skipped = 0
    last_loss: float | None = None
    stop_at = total_steps if cfg.max_steps is None else min(total_steps, cfg.max_steps)
    window_start, window_items = time.perf_counter(), 0
    model.train()
    while step < stop_at:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        dataset.set_epoch(epoch)
        sampler = train_data.StepSampler(
            len(paths),
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            epoch=epoch,
            rank=me,
            world=world,
            start_step=in_epoch,
        )
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size // world,
            sampler=sampler,
            num_workers=cfg.data.workers,
            collate_fn=train_data.collate,
            worker_init_fn=_worker_init if cfg.data.workers else None,
            persistent_workers=False,
            pin_memory=device.type == "cuda",
        )
        for batch in loader:
            skipped += train_data.warn_failures(batch["failures"], seen_failures)
            generator = _step_generator(cfg.seed, step)
            if device_views is not None:
                views = device_views(
                    [im.to(device, non_blocking=True) for im in batch["data"]], generator=generator
                )
            else:
                views = batch["data"].to(device, non_blocking=True)
            loss, accuracy = train_step(
                model,
                query,
                optimizer,
                scaler,
                views,
                cfg,
                lr=_lr(cfg, step, steps_per_epoch),
                generator=generator,
            )
            step += 1
            window_items += len(views) * world
            if step % cfg.log_every == 0 or step == stop_at:
                loss_value, acc_value = float(loss), float(accuracy)
                last_loss = loss_value
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": step,
                    "epoch": step / steps_per_epoch,
                    "loss": loss_value,
                    "accuracy": acc_value,
                    "lr": optimizer.param_groups[0]["lr"],
                    "images_per_s": window_items / max(elapsed, 1e-9),
                    "skipped_images": skipped,
                }
                window_start, window_items = time.perf_counter(), 0
                if main:
                    with open(metrics_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
                    if writer is not None:
                        for key in ("loss", "accuracy", "lr", "images_per_s"):
                            writer.add_scalar(f"train/{key}", record[key], step)
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{loss_value:.3f}",
                            acc=f"{acc_value:.2f}",
                            lr=f"{record['lr']:.3g}",
                            img_s=f"{record['images_per_s']:.1f}",
                        )
            if bar is not None:
                bar.update(1)
            if step % cfg.checkpoint_every == 0 or step % steps_per_epoch == 0 or step == stop_at:
                save()
            if step >= stop_at:
                break
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if main and step >= total_steps:
        checkpoints.save_encoder(
            out_dir / "encoder",
            model.query.backbone,
            arch=cfg.model.arch,
            input_norm=cfg.model.input_norm,
            info={"encoder": cfg.encoder, "steps": step, "trained_by": "reiqa pretrain"},
        )
    return RunResult(out_dir, step, last_loss)
