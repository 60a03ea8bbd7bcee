"""Optimisers (LARS, SGD) and learning-rate schedules for MoCo-v2 training.

Schedules are pure functions of the global step; the loop calls ``set_lr(optimizer, lr_at(step, ...))``
at the start of every step (see ``reiqa.train.loop.train_step``), so a resumed run needs only the
step to continue the schedule.

LARS follows MoCo-v3 (https://arxiv.org/abs/2104.02057, ``moco/optimizer.py``): "LARS optimizer, no
rate scaling or weight decay for parameters <= 1D".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LARS", "OPTIMIZERS", "build_optimizer", "lr_at", "official_lr_at", "set_lr"]

OPTIMIZERS: tuple[str, ...] = ("lars", "sgd")

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def _check_hyper(
    *, lr: float, weight_decay: float, momentum: float, trust_coefficient: float | None = None
) -> None:
    if not lr >= 0.0:  # also rejects NaN
        raise ValueError(f"lr must be >= 0, got {lr}")
    if not weight_decay >= 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if trust_coefficient is not None and not trust_coefficient > 0.0:
        raise ValueError(f"trust_coefficient must be > 0, got {trust_coefficient}")


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with momentum, as in MoCo-v3 (docs/method.md §2.4).

    For each parameter ``w`` with gradient ``g``:

    - if ``w.ndim > 1``: ``g <- g + weight_decay * w``, then ``g <- g * eta * ||w|| / ||g||`` when both
      norms are > 0 (otherwise ``g`` is left as is);
    - parameters with ``ndim <= 1`` (biases, BatchNorm weight and bias) get neither;
    - for all: ``mu <- momentum * mu + g``; ``w <- w - lr * mu``.

    Args:
        params: parameters or parameter-group dicts to optimise.
        lr: learning rate, >= 0. The default 0 expects the loop to set it every step with ``set_lr``.
        weight_decay: L2 coefficient for ``ndim > 1`` parameters, >= 0.
        momentum: momentum coefficient in [0, 1).
        trust_coefficient: eta of the trust ratio, > 0.

    Raises:
        ValueError: a hyper-parameter is out of range (names it and the value received).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 0.0,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
    ) -> None:
        _check_hyper(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient)
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "trust_coefficient": trust_coefficient,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, checking any hyper-parameter it overrides. See ``torch.optim.Optimizer``."""
        super().add_param_group(param_group)
        g = self.param_groups[-1]
        _check_hyper(
            lr=g["lr"],
            weight_decay=g["weight_decay"],
            momentum=g["momentum"],
            trust_coefficient=g["trust_coefficient"],
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Perform one update.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss; it runs with
                gradients enabled before the update.

        Returns:
            The closure's loss, or None without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    # torch.where rather than `if norm > 0`: no host sync per parameter.
                    ratio = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    g = g.mul(ratio)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(g)
                p.add_(mu, alpha=-group["lr"])
        return loss


def build_optimizer(
    params_or_model: nn.Module | Iterable[Tensor],
    *,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float,
) -> torch.optim.Optimizer:
    """Build the training optimiser.

    Only parameters with ``requires_grad`` are optimised. ``"lars"`` gives one :class:`LARS` group (LARS
    itself exempts ``ndim <= 1`` parameters from weight decay and the trust ratio). ``"sgd"`` gives
    ``torch.optim.SGD`` with two groups, the ``ndim > 1`` parameters with ``weight_decay`` and the
    ``ndim <= 1`` ones (biases, BatchNorm) with none, so both optimisers decay the same parameters.
    Note that the official PyContrast SGD decays every parameter. Empty groups are left out.

    Args:
        params_or_model: a module, or an iterable of parameter tensors.
        name: one of ``OPTIMIZERS`` (``"lars"``, ``"sgd"``).
        lr: initial learning rate, >= 0 (usually overwritten every step with :func:`set_lr`).
        weight_decay: L2 coefficient for ``ndim > 1`` parameters, >= 0.
        momentum: momentum coefficient in [0, 1).

    Returns:
        The optimiser.

    Raises:
        ValueError: unknown ``name``, no trainable parameter, or a hyper-parameter out of range.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
    source = params_or_model.parameters() if isinstance(params_or_model, nn.Module) else params_or_model
    params = [p for p in source if p.requires_grad]
    if not params:
        raise ValueError("build_optimizer got no parameter with requires_grad=True")
    if name == "lars":
        return LARS(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    _check_hyper(lr=lr, weight_decay=weight_decay, momentum=momentum)  # SGD accepts momentum >= 1
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": ps, "weight_decay": wd}
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0))
        if ps  # an empty group would only clutter the state dict
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer`` to ``lr``.

    Raises:
        ValueError: ``lr`` is negative or not finite.
    """
    if not (math.isfinite(lr) and lr >= 0.0):
        raise ValueError(f"lr must be finite and >= 0, got {lr}")
    for group in optimizer.param_groups:
        group["lr"] = lr


def _cosine(base: float, low: float, progress: float) -> float:
    return low + (base - low) * (1.0 + math.cos(math.pi * progress)) / 2.0


def lr_at(
    step: int, *, base_lr: float, total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0
) -> float:
    """Per-iteration linear warm-up then half-cosine decay (docs/method.md §8.6).

    The step ``s`` takes the value of the continuous schedule at ``t = s + 1``: linear
    ``base_lr * t / warmup_steps`` for ``t <= warmup_steps``, then
    ``low + (base_lr - low) * (1 + cos(pi * (t - warmup_steps) / (total_steps - warmup_steps))) / 2``
    with ``low = base_lr * min_lr_ratio``. So step 0 already has lr > 0, step ``warmup_steps - 1`` has
    exactly ``base_lr`` and the last step, ``total_steps - 1``, has exactly ``low``.

    Args:
        step: global step, ``0 <= step < total_steps``.
        base_lr: peak learning rate, >= 0.
        total_steps: number of steps of the whole run, >= 1.
        warmup_steps: steps of linear warm-up, ``0 <= warmup_steps <= total_steps``.
        min_lr_ratio: final learning rate as a fraction of ``base_lr``, in [0, 1].

    Returns:
        The learning rate for this step.

    Raises:
        ValueError: an argument is out of range (named in the message).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, total_steps={total_steps}), got {step}")
    if not base_lr >= 0.0:
        raise ValueError(f"base_lr must be >= 0, got {base_lr}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    t = step + 1
    if t <= warmup_steps:
        return base_lr * t / warmup_steps
    progress = (t - warmup_steps) / (total_steps - warmup_steps)
    return _cosine(base_lr, base_lr * min_lr_ratio, progress)


def official_lr_at(step: int, *, base_lr: float, steps_per_epoch: int, epochs: int) -> float:
    """The official Re-IQA / PyContrast schedule (``--cosine --warm``, docs/method.md §2.5).

    With the 1-based epoch ``e = step // steps_per_epoch + 1`` and ``eta_min = base_lr * 0.1**3``, the
    cosine is evaluated once per epoch: ``lr(e) = eta_min + (base_lr - eta_min) * (1 + cos(pi * e /
    epochs)) / 2``. During the first ``W`` epochs (``W = 5``, or 10 when ``epochs > 500``) it is replaced
    by a per-iteration linear warm-up ``0.01 + p * (lr(W) - 0.01)`` with ``p = step / (W *
    steps_per_epoch)``. Official quirks kept: the warm-up starts at the absolute value 0.01 whatever
    ``base_lr`` is, and never quite reaches ``lr(W)``; epoch ``W + 1`` then starts at ``lr(W + 1)``.

    Args:
        step: global step, ``0 <= step < epochs * steps_per_epoch``.
        base_lr: ``--learning_rate`` (12 in the README command), > 0.
        steps_per_epoch: iterations per epoch, >= 1.
        epochs: number of epochs, >= 1.

    Returns:
        The learning rate for this step.

    Raises:
        ValueError: an argument is out of range (named in the message).
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    total = epochs * steps_per_epoch
    if not 0 <= step < total:
        raise ValueError(f"step must be in [0, epochs * steps_per_epoch = {total}), got {step}")
    if not base_lr > 0.0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    eta_min = base_lr * 0.1**3
    warm_epochs = 10 if epochs > 500 else 5
    epoch = step // steps_per_epoch + 1
    if epoch <= warm_epochs:
        warmup_to = _cosine(base_lr, eta_min, warm_epochs / epochs)
        p = step / (warm_epochs * steps_per_epoch)
        return 0.01 + p * (warmup_to - 0.01)
    return _cosine(base_lr, eta_min, epoch / epochs)
