"""Distributed helpers with a one-process fallback: rank, world size, gathers, start and stop.

Every function works without ``torch.distributed`` being initialised (rank 0 of 1), so the same
code trains in one process, in tests, and under ``torchrun`` (NCCL on GPU, gloo on CPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as torch_dist
from torch import Tensor


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def world_size() -> int:
    return torch_dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return torch_dist.get_rank() if is_initialized() else 0


@torch.no_grad()
def concat_all_gather(x: Tensor) -> Tensor:
    """Concatenate x (N, ...) from every rank, in rank order; x itself on one process. Every
    rank must pass the same N."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    torch_dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def broadcast_(x: Tensor, src: int = 0) -> Tensor:
    """Overwrite x in place with rank ``src``'s x (no-op on one process)."""
    if world_size() > 1:
        torch_dist.broadcast(x, src=src)
    return x


def barrier() -> None:
    if world_size() > 1:
        torch_dist.barrier()


def start_from_env() -> tuple[torch.device | None, bool]:
    """Initialise the process group from torchrun's environment (WORLD_SIZE > 1).

    Returns (this rank's device, whether this call started the group): NCCL on the local GPU when
    CUDA is available, gloo on CPU otherwise; (None, False) in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_initialized():
        return None, False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        torch_dist.init_process_group("nccl")
        return torch.device("cuda", local_rank), True
    torch_dist.init_process_group("gloo")
    return torch.device("cpu"), True


def stop() -> None:
    if is_initialized():
        torch_dist.destroy_process_group()
