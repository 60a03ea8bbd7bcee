"""The model as one differentiable function, its losses, and the model folder it becomes.

``Scorer``: crops -> z-scores. Both encoders of the starting model, the feature vector made as
the model makes it ([quality(full), quality(half), content(full), content(half)], the half scale
from ``reiqa.resize.half_scale``, each encoder after its own ``InputNorm``), standardised with the
regressor's ``mean_`` / ``scale_``, then a linear head. The head starts as the model's regressor
re-expressed in z units of the first database (``OutputScale``): at step 0 the scorer gives
``(regressor(x) - mean) / std``, and the folder it is written as scores exactly what the starting
model scores.

Losses (all in z units of the batch's own database, so raw scores of two databases are never
compared): ``ranking_loss``, a hinge on every ordered pair of the batch; ``mse_loss``;
``degradation_loss``, a hinge asking each crop to score above its degraded copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reiqa.errors import ModelError
from reiqa.features import output_dim
from reiqa.inference import ReIQA, ScoreSpec
from reiqa.models.backbones import InputNorm
from reiqa.regress import FitInfo, QualityRegressor
from reiqa.resize import half_scale

__all__ = [
    "OutputScale",
    "Scorer",
    "degradation_loss",
    "export_model",
    "head_regressor",
    "mse_loss",
    "pair_accuracy",
    "ranking_loss",
    "scorer_from_model",
    "set_train_mode",
]

ROLES = ("quality", "content")


@dataclass(frozen=True)
class OutputScale:
    """The scale scores are written on: score = mean + sign * std * z (the first database's
    training rows; sign -1 for a lower-is-better scale)."""

    mean: float
    std: float
    sign: float


class Scorer(nn.Module):
    """Images (N, 3, H, W) in [0, 1] -> (N,) z-scores, differentiable. ``frozen`` encoders run
    without gradients."""

    def __init__(
        self,
        quality: nn.Module | None,
        content: nn.Module | None,
        *,
        quality_norm: str,
        content_norm: str,
        compat: bool,
        mean: Tensor,
        scale: Tensor,
        frozen: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.quality, self.content = quality, content
        self.quality_norm, self.content_norm = InputNorm(quality_norm), InputNorm(content_norm)
        self.compat = compat
        self.frozen = tuple(frozen)
        self.register_buffer("feature_mean", mean.float().clone())
        self.register_buffer("feature_scale", scale.float().clone())
        self.head = nn.Linear(len(mean), 1)
        for role in self.frozen:
            encoder = getattr(self, role)
            if encoder is not None:
                encoder.requires_grad_(False)

    def encoders(self) -> list[tuple[str, nn.Module, InputNorm]]:
        pairs = ((self.quality, self.quality_norm), (self.content, self.content_norm))
        return [(role, enc, norm) for role, (enc, norm) in zip(ROLES, pairs, strict=True) if enc is not None]

    def features(self, images: Tensor) -> Tensor:
        """(N, D) float32 features, in the model's block order."""
        half = half_scale(images, quantize=self.compat)
        parts = []
        for role, encoder, norm in self.encoders():
            with torch.set_grad_enabled(torch.is_grad_enabled() and role not in self.frozen):
                parts += [encoder(norm(images)), encoder(norm(half))]
        return torch.cat([p.float().flatten(1) for p in parts], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        x = (self.features(images) - self.feature_mean) / self.feature_scale
        with torch.autocast(images.device.type, enabled=False):  # the head in float32
            return self.head(x.float()).squeeze(1)


def scorer_from_model(model: ReIQA, scale: OutputScale, *, frozen: tuple[str, ...] = ()) -> Scorer:
    """The scorer of a loaded model (torch engine): its encoders (taken, not copied) and a head
    that gives ``sign * (regressor(x) - mean) / std``.

    Raises:
        ModelError: the model runs on another engine, or its regressor does not fit its encoders.
    """
    net, reg = model.features, model.regressor
    if net.engine.name != "torch":
        raise ModelError(f"fine-tuning needs the torch engine, the model runs on {net.engine.name}")
    width = sum(2 * output_dim(e) for e in (net.quality, net.content) if e is not None)
    if reg.coef_ is None or len(reg.coef_) != width:
        got = 0 if reg.coef_ is None else len(reg.coef_)
        raise ModelError(f"{model.name}: the regressor has {got} weights, the encoders give {width} features")
    scorer = Scorer(
        net.quality,
        net.content,
        quality_norm=net.quality_norm.kind,
        content_norm=net.content_norm.kind,
        compat=net.compat,
        mean=torch.from_numpy(np.asarray(reg.mean_, dtype=np.float64)),
        scale=torch.from_numpy(np.asarray(reg.scale_, dtype=np.float64)),
        frozen=frozen,
    )
    with torch.no_grad():
        coef = torch.from_numpy(scale.sign * np.asarray(reg.coef_, dtype=np.float64) / scale.std)
        scorer.head.weight.copy_(coef.float()[None])
        scorer.head.bias.fill_(scale.sign * (float(reg.intercept_) - scale.mean) / scale.std)
    return scorer


def set_train_mode(scorer: Scorer, *, bn: str) -> None:
    """Training mode, but frozen encoders in eval mode, and with ``bn='frozen'`` every BatchNorm
    in eval mode (its running statistics stay; its affine weights still learn)."""
    scorer.train()
    for role, encoder, _ in scorer.encoders():
        if role in scorer.frozen:
            encoder.eval()
    if bn == "frozen":
        for module in scorer.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


# -- losses -------------------------------------------------------------------------------------


def ranking_loss(scores: Tensor, z: Tensor, *, margin: float, groups: Tensor | None = None) -> Tensor:
    """Pairwise hinge: the mean over pairs (i, j) with z_i > z_j (of one group, when ``groups``
    is given) of ``relu(min(z_i - z_j, margin) - (s_i - s_j))``. A pair must be ordered right by
    its own gap, up to ``margin``: near-ties ask for little, clear pairs for the full margin.
    Only differences within a batch (one database) enter, so the scale of the scores does not."""
    dz = z[:, None] - z[None, :]
    ds = scores[:, None] - scores[None, :]
    mask = dz > 0
    if groups is not None:
        mask &= groups[:, None] == groups[None, :]
    if not bool(mask.any()):
        return scores.sum() * 0.0
    return torch.relu(dz.clamp(max=margin) - ds)[mask].mean()


def mse_loss(scores: Tensor, z: Tensor) -> Tensor:
    """Mean squared error on the z-scores of the batch's database."""
    return torch.mean((scores - z) ** 2)


def degradation_loss(original: Tensor, degraded: Tensor, *, margin: float) -> Tensor:
    """Hinge: each crop should score above its degraded copy by ``margin``: mean of
    ``relu(margin - (s_original - s_degraded))`` (0 without copies)."""
    if original.numel() == 0:
        return original.sum() * 0.0
    return torch.relu(margin - (original - degraded)).mean()


@torch.no_grad()
def pair_accuracy(scores: Tensor, z: Tensor) -> float:
    """The share of pairs with z_i > z_j that the scores order the same way (1.0 without pairs)."""
    mask = (z[:, None] - z[None, :]) > 0
    if not bool(mask.any()):
        return 1.0
    return float(((scores[:, None] - scores[None, :]) > 0)[mask].float().mean())


# -- the model folder -----------------------------------------------------------------------------


def head_regressor(scorer: Scorer, scale: OutputScale, info: FitInfo) -> QualityRegressor:
    """The head as a ``QualityRegressor`` on the feature vector, on the output scale:
    ``predict(x) == mean + sign * std * head((x - mean_) / scale_)``."""
    weight = scorer.head.weight.detach()[0].double().cpu().numpy()
    bias = float(scorer.head.bias.detach())
    reg = QualityRegressor(method="ridge")
    reg.mean_ = scorer.feature_mean.detach().double().cpu().numpy()
    reg.scale_ = scorer.feature_scale.detach().double().cpu().numpy()
    reg.coef_ = scale.sign * scale.std * weight
    reg.intercept_ = scale.mean + scale.sign * scale.std * bias
    reg.info = info
    return reg


def export_model(
    template: ReIQA,
    scorer: Scorer,
    out: Path,
    *,
    scale: OutputScale,
    score_range: tuple[float, float],
    name: str,
    source: str,
    recipe: dict[str, Any],
    half: bool,
) -> Path:
    """Write the scorer as a model folder: ``template`` (the starting model, loaded on the CPU)
    with the scorer's encoder weights, its head as the regressor and a card naming the recipe.
    Each file is written atomically (``ReIQA.save``)."""
    for role, encoder, _ in scorer.encoders():
        getattr(template.features, role).load_state_dict(encoder.state_dict())
    info = FitInfo(
        blocks=tuple(template.features.blocks()),
        n=int(sum(d["train_rows"] for d in recipe["databases"])),
        higher_is_better=scale.sign > 0,
        score_range=score_range,
        extra={"finetune": recipe},
    )
    card = dataclasses.replace(
        template.card,
        name=name,
        score=ScoreSpec(range=score_range, higher_is_better=scale.sign > 0, source=source),
        extra={**template.card.extra, "finetune": recipe},
    )
    return ReIQA(template.features, head_regressor(scorer, scale, info), card).save(out, half=half)
