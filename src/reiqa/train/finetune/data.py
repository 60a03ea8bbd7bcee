"""The data of a fine-tuning run: the labelled databases, their training and validation rows, the
per-database batch sampler and the training crops.

- Rows: a database's published 'train' part when it has one, else all its rows (its 'test' part
  is never read); a seeded share of them (whole reference contents for synthetic databases) is
  held out for validation. ``rows.csv`` in the run folder lists every row and its part.
- Scores are z-scores of their own database (mean and std of its training rows, the sign turned
  for lower-is-better scales), so no loss ever compares the raw scores of two databases.
- Every batch comes from one database (``DatabaseBatches``): each epoch, each database's rows are
  permuted and cut into batches, and the batches of all databases are shuffled together.
- Crops: the image as the model sees it (its size cap, as scoring applies it), a random
  ``crop`` x ``crop`` window at that resolution and a horizontal flip; an image with a side
  shorter than the crop is upscaled to it first. Each draw is a function of (seed, step, slot):
  a resumed run sees the crops an uninterrupted one would.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from reiqa import datasets
from reiqa.datasets import LabelTable
from reiqa.errors import ConfigError, DatasetError, ImageLoadError, UnknownNameError
from reiqa.features import FeatureOptions, prepare
from reiqa.io import Failure
from reiqa.resize import upscale_to_min_side
from reiqa.train.data import item_seed
from reiqa.train.finetune.config import CSV, Database

__all__ = ["Crops", "DatabaseBatches", "Rows", "collate", "load_rows", "random_crop", "rows_csv"]

#: (database, row of its table, seed of the crop)
Item = tuple[int, int, int]


@dataclass
class Rows:
    """One database of a run: its table, its training and validation rows (positions in the
    table) and the statistics its z-scores use (of the training rows)."""

    name: str
    table: LabelTable
    train: np.ndarray
    val: np.ndarray
    mean: float
    std: float
    sign: float  # +1 for higher-is-better scores, -1 for lower-is-better ones

    def z(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """z-scores (higher is better) of table rows."""
        return self.sign * (self.table.scores[np.asarray(rows, dtype=np.int64)] - self.mean) / self.std


def _load_table(db: Database) -> LabelTable:
    """The LabelTable of ``--db NAME=ROOT``, with errors that name the option."""
    root = Path(db.root).expanduser()
    is_csv = db.name.lower() == CSV
    if not is_csv:
        try:
            datasets.get(db.name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"--db {db.name}={db.root}: {exc}; or '{CSV}' for a CSV file") from exc
    if not root.exists():
        what = "file" if is_csv else "folder"
        raise DatasetError(f"{root}: no such {what} (--db {db.name}={db.root})")
    return datasets.load_csv(root) if is_csv else datasets.load(db.name, root)


def _split(table: LabelTable, *, val_fraction: float, val: int | None, seed: int):
    """(train rows, val rows) of a table: its 'train' part (or all rows), a seeded share held out
    by whole groups (reference contents when the table has them, else single rows), drawn from
    the seed and the database's name (not its place in the list)."""
    has_train = table.split is not None and "train" in table.split
    pool = np.array(table.split_indices("train") if has_train else range(len(table)), dtype=np.int64)
    keys = [table.reference[i] for i in pool] if table.reference is not None else [str(i) for i in pool]
    groups: dict[str, list[int]] = {}
    for row, key in zip(pool.tolist(), keys, strict=True):
        groups.setdefault(key, []).append(row)
    wanted = val if val is not None else round(val_fraction * len(pool))
    order = np.random.default_rng([seed, zlib.crc32(table.dataset.encode())]).permutation(len(groups))
    names, held = list(groups), []
    for g in order:
        if len(held) >= wanted:
            break
        held += groups[names[g]]
    val_rows = np.array(sorted(held), dtype=np.int64)
    train_rows = np.setdiff1d(pool, val_rows)
    if len(train_rows) < 2 or len(val_rows) < 2:
        raise DatasetError(
            f"{table.root}: {len(pool)} training rows give {len(train_rows)} to train on and "
            f"{len(val_rows)} to validate on; each needs at least 2 (change --val-fraction or --val)"
        )
    return train_rows, val_rows


def load_rows(
    databases: Sequence[Database], *, val_fraction: float, val: int | None, seed: int
) -> list[Rows]:
    """Every database's table, rows and z-score statistics, in the order given."""
    out: list[Rows] = []
    for index, db in enumerate(databases):
        table = _load_table(db)
        train, held = _split(table, val_fraction=val_fraction, val=val, seed=seed)
        scores = table.scores[train]
        std = float(scores.std())
        if not std > 0:
            raise DatasetError(f"{table.root}: every training score is {scores[0]}; nothing to learn")
        name = table.dataset if table.dataset not in {r.name for r in out} else f"{table.dataset}-{index}"
        sign = 1.0 if table.higher_is_better else -1.0
        out.append(Rows(name, table, train, held, float(scores.mean()), std, sign))
    return out


def rows_csv(rows: Sequence[Rows]) -> str:
    """The text of ``rows.csv``: database, part (train or val), image (relative to the database's
    folder where it is inside it), score as published."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["database", "part", "image", "score"])
    for r in rows:
        for part, indices in (("train", r.train), ("val", r.val)):
            for i in indices.tolist():
                path = r.table.paths[i]
                try:
                    name = path.relative_to(r.table.root).as_posix()
                except ValueError:
                    name = str(path)
                writer.writerow([r.name, part, name, repr(float(r.table.scores[i]))])
    return buffer.getvalue()


def batch_size_of(n: int, batch_size: int) -> int:
    """A database smaller than a batch gives batches of all its rows."""
    return min(batch_size, n)


class DatabaseBatches(Sampler[list[Item]]):
    """The batches of the steps of one epoch, from ``start`` on. Each batch holds rows of one
    database: every database's training rows are permuted and cut into batches (an incomplete
    last one left out), then all batches are shuffled together; the order is a function of
    (seed, epoch). Items carry the seed of their crop, a function of (seed, step, slot)."""

    def __init__(
        self, train_rows: Sequence[np.ndarray], *, batch_size: int, seed: int, epoch: int, start: int = 0
    ) -> None:
        self.train_rows = [np.asarray(t) for t in train_rows]
        self.batch_size, self.seed, self.epoch, self.start = batch_size, seed, epoch, start

    @staticmethod
    def steps_per_epoch(sizes: Sequence[int], batch_size: int) -> int:
        return sum(n // batch_size_of(n, batch_size) for n in sizes)

    def plan(self) -> list[tuple[int, list[int]]]:
        """(database, table rows) of every step of the epoch."""
        g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -3))
        batches: list[tuple[int, list[int]]] = []
        for d, rows in enumerate(self.train_rows):
            b = batch_size_of(len(rows), self.batch_size)
            perm = rows[torch.randperm(len(rows), generator=g).numpy()]
            batches += [(d, perm[i * b : (i + 1) * b].tolist()) for i in range(len(rows) // b)]
        return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def __iter__(self) -> Iterator[list[Item]]:
        steps = self.steps_per_epoch([len(t) for t in self.train_rows], self.batch_size)
        plan = self.plan()
        for i in range(self.start, steps):
            step = self.epoch * steps + i
            d, rows = plan[i]
            yield [(d, row, item_seed(self.seed, step, slot)) for slot, row in enumerate(rows)]

    def __len__(self) -> int:
        return self.steps_per_epoch([len(t) for t in self.train_rows], self.batch_size) - self.start


def random_crop(image: Tensor, crop: int, generator: torch.Generator) -> Tensor:
    """A random ``crop`` x ``crop`` window of a (3, H, W) image, flipped left-right half the
    time; a side shorter than ``crop`` is upscaled to it first (antialiased bicubic)."""
    image = upscale_to_min_side(image, crop)
    h, w = image.shape[-2:]
    top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
    out = image[:, top : top + crop, left : left + crop]
    if bool(torch.rand((), generator=generator) < 0.5):
        out = out.flip(-1)
    return out.contiguous()


class Crops(Dataset):
    """Item (database, row, seed) -> (crop or the Failure of an unreadable file, database, row)."""

    def __init__(self, paths: Sequence[Sequence[Path]], *, crop: int, options: FeatureOptions) -> None:
        self.paths = [list(p) for p in paths]
        self.crop, self.options = crop, options

    def __len__(self) -> int:
        return sum(len(p) for p in self.paths)

    def __getitem__(self, item: Item) -> tuple[Tensor | Failure, int, int]:
        d, row, seed = item
        path = self.paths[d][row]
        try:
            image = prepare(path, self.options)
        except ImageLoadError as exc:
            return Failure.of(path, exc), d, row
        return random_crop(image, self.crop, torch.Generator().manual_seed(seed)), d, row


def collate(samples: list[tuple[Tensor | Failure, int, int]]) -> dict:
    """The readable crops stacked with their database and rows; the failures apart."""
    good = [s for s in samples if not isinstance(s[0], Failure)]
    databases = {d for _, d, _ in samples}
    if len(databases) > 1:
        raise ConfigError(f"a batch mixes databases {sorted(databases)}; batches hold one database")
    return {
        "crops": torch.stack([s[0] for s in good]) if good else None,
        "database": samples[0][1],
        "rows": [row for _, _, row in good],
        "failures": [s[0] for s in samples if isinstance(s[0], Failure)],
    }
