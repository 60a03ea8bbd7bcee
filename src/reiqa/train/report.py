"""Training curves from a run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The logged steps of a run, in order; a resumed run's repeated steps keep the last entry."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics (is this a reiqa pretrain --out folder?)")
    by_step: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def plot_training_curve(run_dir: str | Path, output: str | Path, *, title: str | None = None) -> Path:
    """Loss, positive-pair accuracy and learning rate against the epoch, as a PNG."""
    from reiqa.plots import new_figure, save_figure

    records = read_metrics(run_dir)
    epoch = [r["epoch"] for r in records]
    fig = new_figure(13, 3.6)
    axes = fig.subplots(1, 3)
    for ax, key, label in zip(
        axes,
        ("loss", "accuracy", "lr"),
        ("InfoNCE loss", "positive-pair accuracy", "learning rate"),
        strict=True,
    ):
        ax.plot(epoch, [r[key] for r in records], lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title or Path(run_dir).resolve().name)
    return save_figure(fig, output, dpi=120)
