"""The fine-tuning run: ``run(cfg, out_dir)``.

One process on CPU or CUDA (same code; autocast with ``amp``). Each step: a batch of crops of one
database, ``degrade_images`` of them degraded by the distortion engine (a random type of
``reiqa.ranking.DEGRADING`` at level 3, 4 or 5 of 5, on the training device), one forward pass of
the scorer over both, the three losses, AdamW. After every epoch (and at the stop of a
``max_steps`` run) the validation rows are scored whole, as scoring does (the model's size cap,
full and half scale); the figure a checkpoint is chosen by is the worse database's SRCC, and the
best one is written as a model folder into ``out_dir`` at once.

Resumable: ``resume=True`` continues ``out_dir/checkpoint`` (weights, optimizer, scaler, step,
history, random state) and ends with the same weights as a run that never stopped; the crops and
degradations of a step are functions of (seed, step).

``out_dir`` holds: the model folder (``model.json``, encoders, ``regressor.*``: the best
checkpoint), ``finetune.json`` (the config), ``rows.csv`` (every training and validation row),
``history.json`` (every validation, the skipped files), ``metrics.jsonl`` and ``tb/`` (steps),
``checkpoint/``.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from reiqa import distortions
from reiqa.atomic import write_json_atomic, write_text_atomic
from reiqa.errors import ConfigError
from reiqa.extras import require
from reiqa.inference import ReIQA, load
from reiqa.models.checkpoints import find_checkpoint
from reiqa.ranking import DEGRADING
from reiqa.runtime import pick_device
from reiqa.train.checkpointing import check_out_dir
from reiqa.train.data import item_seed, warn_failures
from reiqa.train.finetune.config import FinetuneConfig
from reiqa.train.finetune.data import Crops, DatabaseBatches, Rows, collate, load_rows, rows_csv
from reiqa.train.finetune.scorer import (
    OutputScale,
    degradation_loss,
    export_model,
    mse_loss,
    pair_accuracy,
    ranking_loss,
    set_train_mode,
)
from reiqa.train.finetune.state import (
    FinetuneResult,
    FinetuneState,
    Run,
    build_state,
    check_same_recipe,
    lr_factor,
    restore,
    save,
)
from reiqa.train.finetune.validate import AMP_DTYPES, recipe, validate
from reiqa.train.metrics import MetricsLogger

__all__ = ["AMP_DTYPES", "FinetuneResult", "FinetuneState", "Run", "build_state", "run", "train_step"]

log = logging.getLogger(__name__)

#: levels 3, 4 and 5 of the catalogue's five (0-based 2..4)
DEGRADE_LEVELS = (2, 5)


def degrade(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each crop degraded by a random type of ``DEGRADING`` at level 3, 4 or 5, on its device."""
    n = len(crops)
    types = [DEGRADING[i] for i in torch.randint(len(DEGRADING), (n,), generator=generator).tolist()]
    levels = torch.randint(*DEGRADE_LEVELS, (n,), generator=generator)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    on_device = torch.Generator(device=crops.device).manual_seed(seed)
    with torch.no_grad():
        return distortions.apply(crops, types, levels, generator=on_device)


def train_step(
    state: FinetuneState, crops: torch.Tensor, z: torch.Tensor, *, factor: float, generator: torch.Generator
) -> dict[str, float]:
    """One optimisation step on crops (B, 3, P, P) of one database with their z-scores (B,);
    returns the losses and the batch's pair accuracy. ``generator`` draws the degradations."""
    cfg, scorer, optimizer = state.cfg, state.scorer, state.optimizer
    k = min(cfg.degrade_images, len(crops)) if cfg.degrade_weight > 0 else 0
    batch = torch.cat([crops, degrade(crops[:k], generator)]) if k else crops
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    batch = batch.contiguous(memory_format=fmt)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    optimizer.zero_grad(set_to_none=True)
    amp_dtype = AMP_DTYPES[cfg.amp]
    with torch.autocast(batch.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        everything = scorer(batch)
    scores, degraded = everything[: len(crops)], everything[len(crops) :]
    parts = {
        "rank": ranking_loss(scores, z, margin=cfg.rank_margin),
        "mse": mse_loss(scores, z),
        "degrade": degradation_loss(scores[:k], degraded, margin=cfg.degrade_margin),
    }
    loss = (
        cfg.rank_weight * parts["rank"]
        + cfg.mse_weight * parts["mse"]
        + cfg.degrade_weight * parts["degrade"]
    )
    state.scaler.scale(loss).backward()
    state.scaler.step(optimizer)
    state.scaler.update()
    return {
        "loss": float(loss.detach()),
        **{k: float(v.detach()) for k, v in parts.items()},
        "accuracy": pair_accuracy(scores, z),
    }


def _batches(ctx: Run, state: FinetuneState) -> Iterator[dict]:
    """Loader batches from the current step on, epoch after epoch."""
    cfg = ctx.cfg
    dataset = Crops([r.table.paths for r in ctx.rows], crop=cfg.crop, options=ctx.template.options)
    while True:
        epoch, start = divmod(state.step, ctx.steps_per_epoch)
        sampler = DatabaseBatches(
            [r.train for r in ctx.rows], batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch, start=start
        )
        yield from DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=cfg.workers,
            collate_fn=collate,
            worker_init_fn=_worker_init if cfg.workers else None,
            pin_memory=state.device.type == "cuda",
        )


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _stop_reason(ctx: Run, state: FinetuneState, *, timed: bool = True) -> str | None:
    """Why the run stops after this step, if it does: 'finished', 'max_steps' or (when
    ``timed``) 'time_limit'."""
    if state.step >= ctx.total:
        return "finished"
    if state.step >= ctx.stop_at:
        return "max_steps"
    limit = ctx.cfg.time_limit
    if timed and limit is not None and time.monotonic() - ctx.started >= limit * 60:
        return "time_limit"
    return None


def _one_step(ctx: Run, state: FinetuneState, batch: dict, logger: MetricsLogger) -> dict[str, float] | None:
    """The step of one loader batch: failures reported, the train step (None when no crop of the
    batch could be read), the step counted."""
    seen = set(state.skipped)
    warn_failures(batch["failures"], seen)
    state.skipped += [f.name for f in batch["failures"] if f.name not in state.skipped]
    values = None
    if batch["crops"] is not None:
        rows = ctx.rows[batch["database"]]
        crops = batch["crops"].to(state.device, non_blocking=True)
        z = torch.from_numpy(rows.z(batch["rows"])).float().to(state.device)
        generator = torch.Generator().manual_seed(item_seed(ctx.cfg.seed, -4, state.step))
        factor = lr_factor(ctx.cfg, state.step, ctx.total)
        values = train_step(state, crops, z, factor=factor, generator=generator)
        values["lr"] = state.optimizer.param_groups[0]["lr"]
        values["lr_head"] = state.optimizer.param_groups[-1]["lr"]
        logger.count(len(crops))
    state.step += 1
    return values


def _log(ctx: Run, state: FinetuneState, logger: MetricsLogger, values: dict[str, float]) -> None:
    record = {"epoch": state.step / ctx.steps_per_epoch, **values, "skipped_images": len(state.skipped)}
    logger.log(state.step, record)
    if logger.writer is not None:
        for key in ("rank", "mse", "degrade", "lr_head"):
            logger.writer.add_scalar(f"train/{key}", values[key], state.step)


def _train(ctx: Run, state: FinetuneState, logger: MetricsLogger) -> str:
    """Steps until a stop; validation after every epoch and at a ``max_steps`` stop, a
    checkpoint every ``checkpoint_every`` steps, at every epoch's end and at the stop."""
    cfg = ctx.cfg
    if state.step == 0 and cfg.val_at_start and not state.history:
        _keep(ctx, state, logger, _validate(ctx, state))
    stopped = _stop_reason(ctx, state, timed=False)  # a time limit still lets one step run
    if stopped is not None:
        return stopped
    set_train_mode(state.scorer, bn=cfg.bn)
    last: dict[str, float] | None = None
    for batch in _batches(ctx, state):
        last = _one_step(ctx, state, batch, logger) or last
        stopped = _stop_reason(ctx, state)
        if last is not None and (state.step % cfg.log_every == 0 or stopped):
            _log(ctx, state, logger, last)
        logger.advance()
        epoch_end = state.step % ctx.steps_per_epoch == 0
        if epoch_end or stopped == "max_steps":
            _keep(ctx, state, logger, _validate(ctx, state))
            set_train_mode(state.scorer, bn=cfg.bn)
        if stopped or epoch_end or state.step % cfg.checkpoint_every == 0:
            save(ctx, state)
        if stopped:
            return stopped
    raise AssertionError("the batches ran out")  # _batches never ends


def _keep(ctx: Run, state: FinetuneState, logger: MetricsLogger, record: dict[str, Any]) -> None:
    """Record a validation; a better one than the best so far is written as the model folder."""
    figure = record["worst_srcc"]
    record["best"] = figure is not None and (state.best is None or figure > state.best)
    state.history.append(record)
    figures = ", ".join(
        f"{name} {'-' if m['srcc'] is None else format(m['srcc'], '.3f')}"
        for name, m in record["databases"].items()
    )
    log.info("validation at step %d: SRCC %s%s", state.step, figures, " (best so far)" * record["best"])
    if record["best"]:
        state.best, state.best_step = figure, state.step
        _export(ctx, state, record)
    _write_history(ctx, state)
    if logger.writer is not None:
        for name, m in record["databases"].items():
            for key in ("srcc", "plcc"):
                if m[key] is not None:
                    logger.writer.add_scalar(f"val/{name}/{key}", m[key], state.step)
        if figure is not None:
            logger.writer.add_scalar("val/worst_srcc", figure, state.step)


def _validate(ctx: Run, state: FinetuneState) -> dict[str, Any]:
    return validate(
        state.scorer,
        ctx.rows,
        ctx.template.options,
        step=state.step,
        epoch=state.step / ctx.steps_per_epoch,
        amp=ctx.cfg.amp,
        channels_last=ctx.cfg.channels_last,
        workers=ctx.cfg.workers,
    )


def _export(ctx: Run, state: FinetuneState, record: dict[str, Any]) -> Path:
    """The scorer as it is, written as the model folder ``ctx.out_dir``."""
    start = ctx.cfg.model if ctx.cfg.model == "default" else Path(ctx.cfg.model).name
    names = " + ".join(r.name for r in ctx.rows)
    source = ", ".join(f"{r.name} ({len(r.train)} training rows)" for r in ctx.rows)
    scores = ctx.rows[0].table.scores[ctx.rows[0].train]
    return export_model(
        ctx.template,
        state.scorer,
        ctx.out_dir,
        scale=ctx.scale,
        score_range=(float(scores.min()), float(scores.max())),
        name=f"{ctx.template.name}, fine-tuned on {names} (reiqa finetune, step {state.step})",
        source=f"fine-tuned on {source}; on {ctx.rows[0].name}'s scale",
        recipe=recipe(ctx.cfg, ctx.rows, record, start=start),
        half=ctx.cfg.half,
    )


def _write_history(ctx: Run, state: FinetuneState) -> None:
    write_json_atomic(
        ctx.out_dir / "history.json",
        {"validations": state.history, "best_step": state.best_step, "skipped": state.skipped},
    )


def _prepare_out_dir(cfg: FinetuneConfig, out_dir: Path, rows: list[Rows], *, resume: bool) -> None:
    """Check that starting (or resuming) in ``out_dir`` is what was asked; write the config and
    the rows (or check them against the run's, on resume)."""
    ckpt_dir = check_out_dir(out_dir, resume=resume)
    listing = rows_csv(rows)
    if resume:
        found = find_checkpoint(ckpt_dir)
        check_same_recipe(FinetuneConfig.from_json(found / "config.json"), cfg, ckpt_dir)
        if (out_dir / "rows.csv").read_text(encoding="utf-8") != listing:
            raise ConfigError(
                f"{out_dir / 'rows.csv'}: the databases' rows are not those the run started with "
                "(a label file or the split changed); start a new run"
            )
        return
    if (out_dir / "model.json").exists():
        raise ConfigError(f"{out_dir} already holds a model; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "finetune.json", cfg.to_json())
    write_text_atomic(out_dir / "rows.csv", listing)


def _check_scale(model: ReIQA, rows: Rows) -> None:
    """Warn when the starting model does not score on the first database's scale (the head then
    starts far from the z-scores it is fitted to)."""
    card = model.card.score
    outside = card.range is not None and not card.range[0] <= rows.mean <= card.range[1]
    if outside or card.higher_is_better != (rows.sign > 0):
        warnings.warn(
            f"{model.name!r} scores on {card.range} ({'higher' if card.higher_is_better else 'lower'} is "
            f"better), not on the scale of {rows.name} (mean {rows.mean:.4g}); put the database the "
            "model was fitted on first in --db (the default model: clive)",
            UserWarning,
            stacklevel=3,
        )


def run(
    cfg: FinetuneConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``cfg.model`` on ``cfg.databases``; the best checkpoint becomes the model folder
    ``out_dir`` (``reiqa.load(out_dir)``).

    Raises:
        FileNotFoundError: ``resume`` and ``out_dir`` has no checkpoint.
        ConfigError: ``out_dir`` holds a checkpoint (not ``resume``) or a model; the checkpoint
            was made with another recipe; the rows changed.
        UnknownNameError, DatasetError: a database name or folder that does not work.
    """
    out_dir = Path(out_dir)
    require("scipy.stats", "train", "reiqa finetune")  # validation's metrics, checked before any work
    on = pick_device(device)
    rows = load_rows(cfg.databases, val_fraction=cfg.val_fraction, val=cfg.val, seed=cfg.seed)
    _prepare_out_dir(cfg, out_dir, rows, resume=resume)
    for r in rows:
        log.info(
            "%s: %d training and %d validation rows (%s)",
            r.name,
            len(r.train),
            len(r.val),
            out_dir / "rows.csv",
        )
    template = load(cfg.model)  # stays on the CPU, as the output's template
    scale = OutputScale(rows[0].mean, rows[0].std, rows[0].sign)
    _check_scale(template, rows[0])
    spe = DatabaseBatches.steps_per_epoch([len(r.train) for r in rows], cfg.batch_size)
    ctx = Run(cfg, out_dir, rows, scale, template, spe)
    state = build_state(cfg, copy.deepcopy(template), scale, on)
    if resume:
        restore(ctx, state)
    logger = MetricsLogger(out_dir, step=state.step, stop_at=ctx.stop_at, progress=progress)
    try:
        stopped = _train(ctx, state, logger)
    finally:
        logger.close()
    best = next((r for r in reversed(state.history) if r["best"]), None)
    return FinetuneResult(out_dir, state.step, stopped, best, list(state.skipped))
