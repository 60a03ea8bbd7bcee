"""What a run reports while it trains: one JSON line per logged step (``metrics.jsonl``),
TensorBoard scalars (``tb/``), and a progress bar. Only rank 0 writes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from reiqa import dist
from reiqa.extras import require

SCALARS = ("loss", "accuracy", "lr", "images_per_s")


class MetricsLogger:
    """Logs training steps of a run in ``out_dir``, starting at ``step`` (a resumed run purges
    the TensorBoard events after it). Throughput is measured between logged steps."""

    def __init__(self, out_dir: Path, *, step: int, stop_at: int, progress: bool) -> None:
        self.main = dist.rank() == 0
        self.path = out_dir / "metrics.jsonl"
        self.writer = None
        self.bar = None
        if self.main:  # tensorboard: the train extra
            tensorboard = require("torch.utils.tensorboard", "train", "training", package="tensorboard")
            self.writer = tensorboard.SummaryWriter(str(out_dir / "tb"), purge_step=step)
        if self.main and progress:
            from tqdm import tqdm

            self.bar = tqdm(total=stop_at, initial=step, unit="step", dynamic_ncols=True)
        self._start, self._items = time.perf_counter(), 0

    def count(self, images: int) -> None:
        """``images`` more images went through a step (all ranks together)."""
        self._items += images

    def log(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        """Write one record: ``values`` (loss, accuracy, lr, epoch, ...) and the throughput since
        the last record. Returns the record."""
        elapsed = time.perf_counter() - self._start
        record = {"step": step, **values, "images_per_s": self._items / max(elapsed, 1e-9)}
        self._start, self._items = time.perf_counter(), 0
        if not self.main:
            return record
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in SCALARS:
                self.writer.add_scalar(f"train/{key}", record[key], step)
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{record['loss']:.3f}",
                acc=f"{record['accuracy']:.2f}",
                lr=f"{record['lr']:.3g}",
                img_s=f"{record['images_per_s']:.1f}",
            )
        return record

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
