"""Training data: a list of image files, decoded in DataLoader workers, with bad files skipped.

Every random choice is a pure function of (seed, epoch, index) or (seed, step), so the data a
step sees does not depend on the number of workers or processes, and a resumed run sees exactly
what an uninterrupted one would have."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from reiqa.errors import DataError, ImageLoadError
from reiqa.io import Failure, load_image
from reiqa.resize import cap_size

MAX_ATTEMPTS = 16  # a bad image is replaced by the next index, this many times at most


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one (epoch, image) draw, well mixed (splitmix64)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return x & (2**63 - 1)


@dataclass
class Sample:
    index: int  # the index actually used (after replacing bad files)
    data: Tensor  # an image (3, H, W) or its views
    failures: list[Failure]  # files skipped on the way


class ImageFiles(Dataset):
    """Decodes image i; a file that fails is replaced by the next one (and reported).

    ``transform(image, generator)`` (optional) turns the image into training views inside the
    worker, with a generator seeded from (seed, epoch, index)."""

    def __init__(self, paths: Sequence[Path], *, max_side: int | None, seed: int, transform=None) -> None:
        self.paths = list(paths)
        self.max_side = max_side
        self.seed = seed
        self.epoch = 0
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Sample:
        failures: list[Failure] = []
        for attempt in range(MAX_ATTEMPTS):
            i = (index + attempt) % len(self.paths)
            try:
                image = cap_size(load_image(self.paths[i]), max_side=self.max_side)
            except ImageLoadError as exc:
                failures.append(Failure.of(self.paths[i], exc))
                continue
            if self.transform is not None:
                generator = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, index))
                image = self.transform(image, generator)
            return Sample(i, image, failures)
        raise DataError(
            f"{MAX_ATTEMPTS} images in a row failed to load, from {self.paths[index]}: {failures[-1].error}"
        )


def collate(samples: list[Sample]) -> dict:
    """Stack view stacks (same shape) or keep a list of images (sizes may differ)."""
    data = [s.data for s in samples]
    same = all(d.shape == data[0].shape for d in data)
    return {
        "data": torch.stack(data) if same and data[0].ndim == 4 else data,
        "index": torch.tensor([s.index for s in samples]),
        "failures": [f for s in samples for f in s.failures],
    }


class StepSampler(Sampler[int]):
    """Indices of one epoch for one rank: a permutation drawn from (seed, epoch), cut into
    global batches of ``batch_size`` (the incomplete last one dropped); rank r takes the r-th
    contiguous share of each batch. Starts at ``start_step`` within the epoch (resume)."""

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        start_step: int = 0,
    ) -> None:
        if batch_size % world:
            raise DataError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.start_step = rank, world, start_step

    @staticmethod
    def steps_per_epoch(n: int, batch_size: int) -> int:
        return n // batch_size

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -1))
        perm = torch.randperm(self.n, generator=g).tolist()
        share = self.batch_size // self.world
        for step in range(self.start_step, self.steps_per_epoch(self.n, self.batch_size)):
            batch = perm[step * self.batch_size : (step + 1) * self.batch_size]
            yield from batch[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return (self.steps_per_epoch(self.n, self.batch_size) - self.start_step) * (
            self.batch_size // self.world
        )


def warn_failures(failures: list[Failure], seen: set[str]) -> int:
    """Warn once per bad file; returns how many new files were reported."""
    new = 0
    for failure in failures:
        if failure.name not in seen:
            seen.add(failure.name)
            new += 1
            warnings.warn(f"skipped a training image: {failure.error}", UserWarning, stacklevel=2)
    return new
