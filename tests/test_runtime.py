"""The device picker checks what the user named before any work starts."""

from __future__ import annotations

import pytest
import torch

from reiqa.errors import ConfigError
from reiqa.runtime import pick_device


def test_auto_and_cpu() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu0", "cuda:x", ""])
def test_a_name_that_is_no_device_is_refused(name) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="sees no GPU; use cpu or auto"):
        pick_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_index_beyond_the_count_is_refused() -> None:
    with pytest.raises(ConfigError, match="numbered from 0"):
        pick_device(f"cuda:{torch.cuda.device_count()}")
