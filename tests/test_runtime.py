"""The device picker checks what the user named before any work starts; the allocator settings
of long CPU jobs give their memory back when the job ends."""

from __future__ import annotations

import subprocess
import sys

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


_RELEASE = """
import torch
from reiqa.runtime import release_memory, tune_allocator

def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024

assert tune_allocator()
x = torch.ones(64 * 2**20)  # 256 MB, from the heap now that mmap is off
del x  # kept by glibc for reuse
kept = anon_mb()
assert release_memory()
print(kept - anon_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_release_memory_gives_back_what_the_tuned_allocator_kept() -> None:
    out = subprocess.run([sys.executable, "-c", _RELEASE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 200  # MB returned to the OS


def test_tuned_allocator_releases_memory_even_when_the_job_fails(monkeypatch) -> None:
    import reiqa.runtime as runtime

    calls = []
    monkeypatch.setattr(runtime, "tune_allocator", lambda: calls.append("tune") or True)
    monkeypatch.setattr(runtime, "release_memory", lambda: calls.append("release") or True)
    with pytest.raises(RuntimeError, match="job failed"), runtime.tuned_allocator():
        calls.append("job")
        raise RuntimeError("job failed")
    assert calls == ["tune", "job", "release"]
