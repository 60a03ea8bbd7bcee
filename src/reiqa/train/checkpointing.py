"""The checkpoint of a run: refuse to overwrite one, save the state atomically, restore it exactly.

A checkpoint (``out_dir/checkpoint``, see ``reiqa.models.checkpoints``) holds the model (query
and key encoders, the queue), the optimizer, the grad scaler, the step and the config. A resumed
run ends with the same weights as one that never stopped."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from reiqa import dist
from reiqa.errors import ConfigError
from reiqa.models import checkpoints
from reiqa.train.config import TrainConfig
from reiqa.train.state import TrainState

CHECKPOINT = "checkpoint"


def check_out_dir(out_dir: Path, *, resume: bool) -> Path:
    """The checkpoint folder of ``out_dir``, after checking that resuming (or starting) there is
    what the user asked for.

    Raises:
        FileNotFoundError: ``resume`` and there is no checkpoint to resume.
        ConfigError: not ``resume``, and a checkpoint would be overwritten.
    """
    ckpt_dir = out_dir / CHECKPOINT
    existing = checkpoints.find_checkpoint(ckpt_dir)
    if resume and existing is None:
        raise FileNotFoundError(f"{out_dir}: nothing to resume, no checkpoint in {ckpt_dir}")
    if not resume and existing is not None:
        raise ConfigError(
            f"{out_dir} already holds a checkpoint; pass --resume to continue it or choose another --out"
        )
    return ckpt_dir


def save(state: TrainState, ckpt_dir: Path, *, steps_per_epoch: int) -> None:
    """Rank 0 writes the checkpoint (atomically); every rank waits for it."""
    if dist.rank() == 0:
        extra = {
            "optimizer": state.optimizer.state_dict(),
            "scaler": state.scaler.state_dict(),
            "step": state.step,
            "epoch": state.step // steps_per_epoch,
        }
        checkpoints.save_checkpoint(ckpt_dir, model=state.model, config_json=state.cfg.to_json(), state=extra)
    dist.barrier()


def restore(state: TrainState, ckpt_dir: Path) -> None:
    """Load a checkpoint into ``state`` (weights, optimizer, scaler, step).

    Raises:
        ConfigError: the checkpoint was trained with another config (``max_steps`` aside).
    """
    saved_json, weights, extra = checkpoints.load_checkpoint(ckpt_dir)
    with warnings.catch_warnings():  # a checkpoint of an older version: its config is converted
        warnings.simplefilter("ignore", UserWarning)
        saved = TrainConfig.from_dict(json.loads(saved_json), source=str(ckpt_dir / "config.json"))
    if saved.replace(max_steps=None) != state.cfg.replace(max_steps=None):
        raise ConfigError(
            f"{ckpt_dir}: the checkpoint was trained with another config; resume with the same one"
        )
    checkpoints.load_state_strict(state.model, {k: v.to(state.device) for k, v in weights.items()}, ckpt_dir)
    state.optimizer.load_state_dict(extra["optimizer"])
    state.scaler.load_state_dict(extra["scaler"])
    state.step = int(extra["step"])
