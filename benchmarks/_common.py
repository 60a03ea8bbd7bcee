"""The machine's measured compute ceiling, timed in the benchmark's own run (shared by the
benchmarks): a large float32 matmul and a large 3x3 convolution."""

from __future__ import annotations

import platform
import time

import torch
import torch.nn.functional as F


def _timed_gflops(fn, flops: float, device: torch.device, reps: int) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return flops * reps / (time.perf_counter() - start) / 1e9


def matmul_gflops(device: torch.device, threads: int) -> float:
    """GFLOP/s of an n x n float32 matmul (n = 2048 on CPU, 4096 on CUDA)."""
    torch.set_num_threads(threads)
    n = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return _timed_gflops(lambda: a @ b, 2 * n**3, device, 20 if device.type == "cuda" else 5)


def conv_gflops(device: torch.device, threads: int) -> float:
    """GFLOP/s of a ResNet-like 3x3 convolution, 128 -> 128 channels on 56 x 56 maps (batch 8
    on CPU, 64 on CUDA), channels-last float32 on CPU as the encoders run."""
    torch.set_num_threads(threads)
    n = 64 if device.type == "cuda" else 8
    x = torch.randn(n, 128, 56, 56, device=device)
    w = torch.randn(128, 128, 3, 3, device=device)
    if device.type == "cpu":
        x, w = (
            x.contiguous(memory_format=torch.channels_last),
            w.contiguous(memory_format=torch.channels_last),
        )
    flops = 2 * n * 128 * 128 * 9 * 56 * 56
    with torch.inference_mode():
        return _timed_gflops(
            lambda: F.conv2d(x, w, padding=1), flops, device, 20 if device.type == "cuda" else 5
        )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def limit_train(labels, n: int | None):
    """The first ``n`` rows of the Train split (in the published CSV order) and all of Test."""
    if n is None:
        return labels
    return labels.subset(labels.split_indices("train")[:n] + labels.split_indices("test"))
