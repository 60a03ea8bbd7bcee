"""Batch jobs over many files: scoring into a CSV / JSON Lines / JSON file (resumable), and feature
extraction into a feature file.

Rows are appended after every batch (flushed and fsynced), so a crash loses at most the batch in
flight; running the same command again scores only the files that are not in the output yet.
Unreadable files get a row with an empty score and the error, and the job goes on."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reiqa.bundle import ReIQA, ScoreRecord, load
from reiqa.errors import ConfigError
from reiqa.features import FeatureModel, FeatureOptions, FeatureTable, extract
from reiqa.inputs import expand_inputs, list_training_images
from reiqa.io import DEFAULT_MAX_PIXELS
from reiqa.runtime import pick_device

FIELDS = ("path", "score", "error")


@dataclass
class JobSummary:
    total: int  # files named by the inputs
    scored: int  # scored in this run
    failed: int  # unreadable in this run
    skipped: int  # already in the output from an earlier run
    records: list[ScoreRecord]


def _format(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise ValueError(f"{output}: the output must end in .csv, .json or .jsonl")
    return suffix[1:]


def _partial(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial.jsonl")


def read_done(output: Path) -> dict[str, ScoreRecord]:
    """Records already in an output file (and its partial log, for .json)."""
    done: dict[str, ScoreRecord] = {}
    if output.is_file() and output.stat().st_size:
        kind = _format(output)
        if kind == "csv":
            with open(output, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        elif kind == "jsonl":
            rows = [
                json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        else:
            rows = json.loads(output.read_text(encoding="utf-8"))
        for row in rows:
            score = row.get("score")
            done[row["path"]] = ScoreRecord(
                row["path"], float(score) if score not in (None, "") else None, row.get("error") or None
            )
    partial = _partial(output)
    if partial.is_file():
        for line in partial.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["path"]] = ScoreRecord(row["path"], row["score"], row["error"])
    return done


class _Writer:
    def __init__(self, output: Path) -> None:
        self.output = output
        self.kind = _format(output)
        target = _partial(output) if self.kind == "json" else output
        output.parent.mkdir(parents=True, exist_ok=True)
        new = not target.is_file() or target.stat().st_size == 0
        self.file = open(target, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.csv = csv.DictWriter(self.file, fieldnames=FIELDS) if self.kind == "csv" else None
        if self.csv is not None and new:
            self.csv.writeheader()

    def write(self, records: Iterable[ScoreRecord]) -> None:
        for r in records:
            row = {"path": r.path, "score": r.score, "error": r.error}
            if self.csv is not None:
                self.csv.writerow(
                    {**row, "score": "" if r.score is None else repr(r.score), "error": r.error or ""}
                )
            else:
                self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, all_records: list[ScoreRecord]) -> None:
        self.file.close()
        if self.kind == "json":
            tmp = self.output.with_name(f".{self.output.name}.tmp")
            rows = [{"path": r.path, "score": r.score, "error": r.error} for r in all_records]
            tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
            os.replace(tmp, self.output)
            _partial(self.output).unlink(missing_ok=True)


def score_to_file(
    model: ReIQA,
    paths: Sequence[Path],
    output: Path | None,
    *,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> JobSummary:
    """Score ``paths``; with ``output``, append to it and skip what it already holds."""
    done = read_done(output) if output is not None else {}
    todo = [p for p in paths if str(p) not in done]
    writer = _Writer(output) if output is not None else None
    new: list[ScoreRecord] = []
    batch: list[ScoreRecord] = []
    try:
        records = model.score_files(
            todo, batch_size=batch_size, workers=workers, progress=progress, max_pixels=max_pixels
        )
        for record in records:
            new.append(record)
            batch.append(record)
            if writer is not None and len(batch) >= batch_size:
                writer.write(batch)
                batch = []
        if writer is not None and batch:
            writer.write(batch)
    finally:
        if writer is not None:
            merged = {**done, **{r.path: r for r in new}}
            writer.close([merged[str(p)] for p in paths if str(p) in merged])
    return JobSummary(
        total=len(paths),
        scored=sum(r.score is not None for r in new),
        failed=sum(r.score is None for r in new),
        skipped=len(paths) - len(todo),
        records=new,
    )


@dataclass
class ScoringRun:
    """What ``reiqa score`` did: the job summary, the inputs that named no image file, and the
    model's name and direction for the closing line."""

    summary: JobSummary
    empty_inputs: list[str]
    model_name: str
    higher_is_better: bool


def score_inputs(
    inputs: Sequence[str | Path],
    output: Path | None,
    *,
    recursive: bool = False,
    model: str | Path = "default",
    device: str = "auto",
    batch_size: int = 8,
    workers: int = 0,
    max_side: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: bool | None = None,
    on_empty: Callable[[str], object] | None = None,
) -> ScoringRun:
    """``reiqa score``: expand the inputs (files, folders, globs, CSV lists), load the model
    ('default' or a folder) on ``device``, and score into ``output`` (resumable) or memory.
    ``max_side`` overrides the model's size cap (0: full size). ``progress`` None shows a bar for
    runs over 20 images. ``on_empty`` is told of each input that names no image file, before the
    model is loaded."""
    empty: list[str] = []
    paths = expand_inputs(inputs, recursive=recursive, empty=empty)
    for item in empty if on_empty is not None else ():
        on_empty(item)
    net = load(None if str(model) == "default" else model).to(pick_device(device))
    if max_side is not None:
        net.max_side = max_side or None
    summary = score_to_file(
        net,
        paths,
        output,
        batch_size=batch_size,
        workers=workers,
        progress=len(paths) > 20 if progress is None else progress,
        max_pixels=max_pixels,
    )
    return ScoringRun(summary, empty, net.name, net.higher_is_better)


def extract_to_file(
    inputs: Sequence[str | Path],
    out: Path,
    *,
    quality: Path | None = None,
    content: Path | None = None,
    model: Path | None = None,
    device: str = "auto",
    options: FeatureOptions | None = None,
    **extract_options: Any,
) -> FeatureTable:
    """``reiqa features``: the features of the images the inputs name (folders searched
    recursively) with encoder files (``quality`` and/or ``content``) or a model folder's encoders,
    written to ``out``; ``extract_options`` go to :func:`reiqa.features.extract`."""
    if (quality is None and content is None) == (model is None):
        raise ConfigError("give a quality and/or a content encoder file, or a model folder")
    options = options or FeatureOptions()
    if model is not None:
        net = load(model).features
    else:
        net = FeatureModel.from_files(quality, content, compat=options.compat)
    table = extract(
        net,
        list_training_images(inputs),
        device=pick_device(device),
        max_side=options.max_side,
        min_side=options.min_side,
        **extract_options,
    )
    table.save(out)
    return table
