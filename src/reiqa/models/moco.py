"""MoCo-v2: encoder with projection head, momentum key encoder, key queue, InfoNCE.

"Momentum Contrast for Unsupervised Visual Representation Learning" (He et al., CVPR 2020,
https://arxiv.org/abs/1911.05722) and "Improved Baselines with Momentum Contrastive Learning"
(Chen et al., 2020, https://arxiv.org/abs/2003.04297): "an MLP projection head ... and stronger
data augmentation". Small modules that compose; the training step calls the momentum update and
the queue push itself.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reiqa import dist
from reiqa.models.backbones import InputNorm, build_backbone, feature_dim

NEGATIVES = ("queue", "queue+batch", "queue+same-image")


class ProjectionHead(nn.Sequential):
    """Linear(D, hidden) -> ReLU -> Linear(hidden, out); indices 0 and 2 hold the weights, as in
    the official ``head.0`` / ``head.2``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class Encoder(nn.Module):
    """Input normalisation -> backbone -> projection head -> L2 normalisation.

    ``features(x)``: (N, 3, H, W) -> (N, D) pooled backbone features (what Re-IQA uses at
    inference). ``forward(x)``: (N, 3, H, W) -> (N, proj_dim) unit-norm embeddings (training)."""

    def __init__(
        self, arch: str, *, proj_hidden: int | None = None, proj_dim: int = 128, input_norm: str = "none"
    ) -> None:
        super().__init__()
        dim = feature_dim(arch)
        self.arch = arch
        self.norm = InputNorm(input_norm)
        self.backbone = build_backbone(arch)
        self.head = ProjectionHead(dim, proj_hidden or dim, proj_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(self.norm(x))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.head(self.features(x)), dim=1)


class KeyQueue(nn.Module):
    """FIFO of the last K keys. keys: (K, D) unit-norm; both the keys and the write pointer are
    persistent buffers, so a resumed run continues exactly (the official pointer is not saved)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, k: Tensor) -> None:
        """Write keys (N, D), all ranks' when distributed, overwriting the oldest; N may exceed K
        or not divide it."""
        k = dist.concat_all_gather(k.detach()).to(self.keys.dtype)
        size = self.keys.shape[0]
        if len(k) >= size:
            self.keys.copy_(k[-size:])
            self.ptr.zero_()
            return
        idx = (self.ptr + torch.arange(len(k), device=k.device)) % size
        self.keys[idx] = k
        self.ptr.copy_((self.ptr + len(k)) % size)


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, for parameters only (the target's
    BN statistics come from its own forward passes, as in the official code)."""
    for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
        p_target.mul_(momentum).add_(p_online.detach(), alpha=1.0 - momentum)


def info_nce(
    q: Tensor,
    k: Tensor,
    queue: Tensor,
    temperature: float,
    *,
    batch_keys: Tensor | None = None,
    batch_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """InfoNCE with the positive in column 0.

    Args:
        q, k: (N, D) unit-norm queries and their positive keys.
        queue: (K, D) negative keys from earlier steps.
        temperature: softmax temperature.
        batch_keys: (M, D) keys of this step that may also serve as negatives.
        batch_mask: (N, M) bool, True where batch_keys[j] is a negative for q[i] (never its own
            positive).

    Returns:
        (loss, accuracy): the mean cross-entropy, and the share of queries whose positive scores
        highest (both scalars, float32).
    """
    q, k, queue = q.float(), k.float(), queue.float()
    logits = [(q * k).sum(dim=1, keepdim=True), q @ queue.T]  # (N, 1), (N, K)
    if batch_keys is not None:
        if batch_mask is None:
            raise ValueError("batch_keys needs batch_mask")
        extra = q @ batch_keys.float().T  # (N, M)
        logits.append(extra.masked_fill(~batch_mask, float("-inf")))
    scores = torch.cat(logits, dim=1) / temperature  # (N, 1 + K [+ M])
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)
    loss = F.cross_entropy(scores, target)
    accuracy = (scores.argmax(dim=1) == 0).float().mean()
    return loss, accuracy


def batch_negative_mask(image_ids: Tensor, negatives: str, world: int = 1, rank_: int = 0) -> Tensor | None:
    """Which in-batch keys are negatives for each query.

    image_ids: (N,) the source image of each local instance. Returns None for 'queue', else
    an (N, M) bool mask over the gathered keys of all ranks (M = world * N; this rank's keys
    start at rank_ * N): 'queue+batch' takes every other instance, 'queue+same-image' only the
    other instances (distortions, scales) of the same image."""
    if negatives == "queue":
        return None
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    n = len(image_ids)
    own = torch.zeros(n, world * n, dtype=torch.bool, device=image_ids.device)
    own[torch.arange(n), rank_ * n + torch.arange(n)] = True
    if negatives == "queue+batch":
        return ~own
    mask = torch.zeros_like(own)
    local = image_ids[:, None] == image_ids[None, :]  # same image, this rank (an image never spans ranks)
    mask[:, rank_ * n : (rank_ + 1) * n] = local
    return mask & ~own


class MoCo(nn.Module):
    """Query encoder, momentum key encoder and key queue.

    ``forward(x_q, x_k)`` returns (q, k), each (N, proj_dim) unit-norm; k has no gradient. The key
    encoder's BatchNorm must not see the query's batch composition (MoCo's "shuffling BN"):
    under DDP the key batch is shuffled across ranks. On one process the batch is split into
    ``bn_groups`` consecutive groups that each get their own BN statistics, for the query and the
    key encoder alike, which emulates that many devices (the official code normalises each GPU's
    share separately); with ``shuffle_bn`` the keys are shuffled before they are grouped.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        queue_size: int,
        momentum: float = 0.999,
        shuffle_bn: bool = True,
        bn_groups: int = 4,
    ) -> None:
        super().__init__()
        self.query = encoder
        self.key = copy.deepcopy(encoder)
        for p in self.key.parameters():
            p.requires_grad_(False)
        proj_dim = encoder.head[2].out_features
        self.queue = KeyQueue(queue_size, proj_dim)
        self.momentum = momentum
        self.shuffle_bn = shuffle_bn
        self.bn_groups = bn_groups

    def forward(
        self,
        x_q: Tensor,
        x_k: Tensor,
        *,
        query: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """query: the (possibly DDP-wrapped) query encoder to call instead of ``self.query``.
        generator: drives the single-process key shuffle."""
        encode = query or self.query
        groups = self._groups(len(x_q))
        q = encode(x_q) if groups == 1 else torch.cat([encode(c) for c in x_q.chunk(groups)])
        with torch.no_grad():
            k = self._keys(x_k, generator)
        return q, k

    @torch.no_grad()
    def momentum_update(self) -> None:
        ema_update(self.query, self.key, self.momentum)

    def _groups(self, n: int) -> int:
        # BatchNorm needs at least two samples per group in training mode
        return 1 if dist.world_size() > 1 else max(1, min(self.bn_groups, n // 2))

    def _keys(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if dist.world_size() > 1:
            return self._keys_shuffled_across_ranks(x) if self.shuffle_bn else self.key(x)
        groups = self._groups(len(x))
        if groups == 1:
            return self.key(x)
        if not self.shuffle_bn:
            return torch.cat([self.key(chunk) for chunk in x.chunk(groups)])
        perm = torch.randperm(len(x), generator=generator, device="cpu").to(x.device)
        shuffled = torch.cat([self.key(chunk) for chunk in x[perm].chunk(groups)])
        out = torch.empty_like(shuffled)
        out[perm] = shuffled
        return out

    def _keys_shuffled_across_ranks(self, x: Tensor) -> Tensor:
        n = len(x)
        gathered = dist.concat_all_gather(x)
        perm = torch.randperm(len(gathered), device=x.device)
        dist.broadcast_(perm, src=0)
        mine = perm[dist.rank() * n : (dist.rank() + 1) * n]
        k = dist.concat_all_gather(self.key(gathered[mine]))
        out = torch.empty_like(k)
        out[perm] = k
        return out[dist.rank() * n : (dist.rank() + 1) * n]
