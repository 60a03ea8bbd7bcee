"""The state of a fine-tuning run: what it reads (``Run``), what it changes (``FinetuneState``:
the scorer, AdamW, the grad scaler, the step, the validation history) and its checkpoint (saved
atomically, restored exactly, refused when the recipe changed)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reiqa.errors import ConfigError
from reiqa.inference import ReIQA
from reiqa.models.checkpoints import load_checkpoint, load_state_strict, save_checkpoint
from reiqa.train.finetune.config import FinetuneConfig
from reiqa.train.finetune.data import Rows
from reiqa.train.finetune.scorer import OutputScale, Scorer, scorer_from_model
from reiqa.train.optim import lr_at

__all__ = [
    "FinetuneResult",
    "FinetuneState",
    "Run",
    "build_optimizer",
    "build_state",
    "check_same_recipe",
    "lr_factor",
    "restore",
    "save",
]


@dataclass
class FinetuneState:
    """The mutable state of a run; ``step`` counts optimisation steps over the whole run."""

    cfg: FinetuneConfig
    device: torch.device
    scorer: Scorer
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int = 0
    best: float | None = None  # the worse database's validation SRCC of the best checkpoint
    best_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class Run:
    """What a run reads but does not change: its config, folder, rows, output scale, the
    starting model on the CPU (the template of the output folder) and the schedule's length."""

    cfg: FinetuneConfig
    out_dir: Path
    rows: list[Rows]
    scale: OutputScale
    template: ReIQA
    steps_per_epoch: int
    started: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    @property
    def stop_at(self) -> int:
        return self.total if self.cfg.max_steps is None else min(self.total, self.cfg.max_steps)


@dataclass
class FinetuneResult:
    out_dir: Path
    step: int
    stopped: str  # 'finished', 'max_steps' or 'time_limit'
    best: dict[str, Any] | None  # the validation record of the checkpoint written to out_dir
    skipped: list[str]


def build_optimizer(scorer: Scorer, cfg: FinetuneConfig) -> torch.optim.AdamW:
    """AdamW: the encoders at ``lr_encoder`` (weight decay on weights, not on biases and norms),
    the head at ``lr_head`` without decay (it starts as the fitted regressor). Each group keeps
    its peak rate in ``base_lr``."""
    decay, flat, head = [], [], []
    for name, p in scorer.named_parameters():
        if p.requires_grad:
            (head if name.startswith("head.") else decay if p.ndim > 1 else flat).append(p)
    groups = [
        {"params": decay, "base_lr": cfg.lr_encoder, "weight_decay": cfg.weight_decay},
        {"params": flat, "base_lr": cfg.lr_encoder, "weight_decay": 0.0},
        {"params": head, "base_lr": cfg.lr_head, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([{**g, "lr": g["base_lr"]} for g in groups if g["params"]], lr=cfg.lr_head)


def lr_factor(cfg: FinetuneConfig, step: int, total: int) -> float:
    """The schedule's multiplier of the peak rates: linear warm-up, then cosine decay."""
    warmup = round(cfg.warmup * total)
    return lr_at(
        min(step, total - 1),
        base_lr=1.0,
        total_steps=total,
        warmup_steps=warmup,
        min_lr_ratio=cfg.min_lr_ratio,
    )


def build_state(cfg: FinetuneConfig, model: ReIQA, scale: OutputScale, device: torch.device) -> FinetuneState:
    """A fresh state: the scorer of ``model`` (taken over) on ``device``, the optimizer, the
    grad scaler (fp16 only)."""
    torch.manual_seed(cfg.seed)
    scorer = scorer_from_model(model, scale, frozen=cfg.freeze)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    scorer = scorer.to(device).to(memory_format=fmt)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    return FinetuneState(cfg, device, scorer, build_optimizer(scorer, cfg), scaler)


def save(ctx: Run, state: FinetuneState) -> None:
    """Write the checkpoint of ``ctx.out_dir`` (atomically)."""
    extra = {
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "step": state.step,
        "best": state.best,
        "best_step": state.best_step,
        "history": state.history,
        "skipped": state.skipped,
        "rng": torch.get_rng_state(),
    }
    save_checkpoint(
        ctx.out_dir / "checkpoint", model=state.scorer, config_json=ctx.cfg.to_json(), state=extra
    )


def restore(ctx: Run, state: FinetuneState) -> None:
    """Load the checkpoint of ``ctx.out_dir`` into ``state``.

    Raises:
        ConfigError: the run was started with another recipe (``RUN_FIELDS`` aside)."""
    ckpt_dir = ctx.out_dir / "checkpoint"
    saved_json, weights, extra = load_checkpoint(ckpt_dir)
    check_same_recipe(FinetuneConfig.from_dict(json.loads(saved_json)), ctx.cfg, ckpt_dir)
    load_state_strict(state.scorer, {k: v.to(state.device) for k, v in weights.items()}, ckpt_dir)
    state.optimizer.load_state_dict(extra["optimizer"])
    state.scaler.load_state_dict(extra["scaler"])
    state.step, state.best, state.best_step = int(extra["step"]), extra["best"], extra["best_step"]
    state.history, state.skipped = list(extra["history"]), list(extra["skipped"])
    torch.set_rng_state(extra["rng"])


def check_same_recipe(saved: FinetuneConfig, cfg: FinetuneConfig, ckpt_dir: Path) -> None:
    changed = saved.differences(cfg)
    if changed:
        raise ConfigError(
            f"{ckpt_dir}: the run was started with another recipe ({'; '.join(changed)}); "
            f"resume with the same options (see {ckpt_dir.parent / 'finetune.json'})"
        )
