from __future__ import annotations

import pytest
import torch

from reiqa.errors import DataError
from reiqa.inputs import list_training_images
from reiqa.io import save_image
from reiqa.train.data import ImageFiles, StepSampler, collate, item_seed
from tests.conftest import textured_images


@pytest.fixture
def folder(tmp_path):
    images = textured_images(5, 40, 48)
    for i in range(5):
        save_image(images[i], tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return tmp_path / "imgs"


def test_bad_images_are_replaced_and_reported(folder) -> None:
    paths = sorted(list_training_images([folder]))
    broken = next(i for i, p in enumerate(paths) if p.name == "broken.jpg")
    dataset = ImageFiles(paths, max_side=None, seed=0)
    sample = dataset[broken]
    assert sample.index == (broken + 1) % len(paths)
    assert sample.failures and "broken.jpg" in sample.failures[0].name
    assert sample.failures[0].error.startswith(sample.failures[0].name) and sample.failures[0].reason
    batch = collate([dataset[0], sample])
    assert isinstance(batch["data"], list) and len(batch["failures"]) == 1


def test_max_side_downscales(folder) -> None:
    paths = sorted(list_training_images([folder]))[:1]
    assert max(ImageFiles(paths, max_side=24, seed=0)[0].data.shape[-2:]) == 24


def test_step_sampler_shards_contiguously_and_resumes() -> None:
    full = list(StepSampler(10, batch_size=4, seed=1, epoch=0))
    assert len(full) == 8 and len(set(full)) == 8  # 2 full batches; the last 2 images dropped
    ranks = [list(StepSampler(10, batch_size=4, seed=1, epoch=0, rank=r, world=2)) for r in (0, 1)]
    assert ranks[0][:2] + ranks[1][:2] == full[:4] and ranks[0][2:] + ranks[1][2:] == full[4:]
    assert list(StepSampler(10, batch_size=4, seed=1, epoch=0, start_step=1)) == full[4:]
    assert list(StepSampler(10, batch_size=4, seed=1, epoch=1)) != full
    with pytest.raises(DataError, match="divisible"):
        StepSampler(10, batch_size=3, seed=0, epoch=0, world=2)


def test_item_seeds_differ_and_repeat() -> None:
    seeds = {item_seed(0, e, i) for e in range(3) for i in range(100)}
    assert len(seeds) == 300 and item_seed(0, 1, 2) == item_seed(0, 1, 2)
    assert all(0 <= s < 2**63 for s in seeds)
    torch.Generator().manual_seed(max(seeds))  # valid seeds
