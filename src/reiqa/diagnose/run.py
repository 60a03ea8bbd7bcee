"""``reiqa diagnose``: the diagnoses of many files, into a CSV / JSON Lines / JSON file or a table,
and a heat map per photo on request.

Rows: ``path, score, issue, severity, error``, then the probability of every issue. CSV has one
column per issue (``p_none``, ``p_blur``, ...); JSON Lines and JSON hold them as an object
``probabilities``. A file that cannot be read gets a row with its error (the file, then the
cause) and the others are diagnosed. An output is written whole, atomically, at the end; an
existing one is replaced only with ``overwrite``.

A run with ``--output`` is resumable: while it works, each diagnosis is appended (and synced)
to ``.NAME.partial.jsonl`` beside the output, under the output's lock. A run stopped by a crash
or Ctrl-C leaves that file; the next run with the same output, model and head diagnoses only the
files it lacks (a file changed since, by size or time, is diagnosed again), then writes the
output and removes the partial file.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reiqa.atomic import write_text_atomic
from reiqa.diagnosis import DiagnosisHead, DiagnosisRecord
from reiqa.errors import OutputError
from reiqa.extras import require
from reiqa.inference import ReIQA, load
from reiqa.inputs import expand_inputs
from reiqa.io import DEFAULT_MAX_PIXELS, Failure
from reiqa.outputs import beside, lock_output, output_format, refuse_to_replace

__all__ = [
    "FIELDS",
    "DiagnoseRun",
    "Partial",
    "columns",
    "diagnose_inputs",
    "format_rows",
    "map_targets",
    "write_maps",
]

FIELDS = ("path", "score", "issue", "severity", "error")


def columns(classes: Sequence[str]) -> list[str]:
    """The CSV columns of diagnoses with these issues."""
    return [*FIELDS, *(f"p_{c}" for c in classes)]


def format_rows(kind: str, records: Sequence[DiagnosisRecord], classes: Sequence[str]) -> str:
    """The text of an output of ``kind`` ('csv', 'jsonl' or 'json')."""
    if kind == "json":
        return json.dumps([r.to_dict() for r in records], indent=1) + "\n"
    if kind == "jsonl":
        return "".join(json.dumps(r.to_dict()) + "\n" for r in records)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns(classes))
    for r in records:
        number = lambda v: "" if v is None else repr(v)  # noqa: E731
        probabilities = [number((r.probabilities or {}).get(c)) for c in classes]
        writer.writerow(
            [r.path, number(r.score), r.issue or "", number(r.severity), r.error or "", *probabilities]
        )
    return out.getvalue()


@dataclass
class DiagnoseRun:
    """What ``reiqa diagnose`` did: a record per file, the inputs that named no image file or
    could not be used, the heat maps written, and the model's name and direction."""

    records: list[DiagnosisRecord]
    classes: tuple[str, ...]
    model_name: str
    higher_is_better: bool
    empty_inputs: list[str] = field(default_factory=list)
    bad_inputs: list[str] = field(default_factory=list)
    maps: list[Path] = field(default_factory=list)
    output: Path | None = None
    resumed: int = 0

    @property
    def failed(self) -> bool:
        """Whether a file has no diagnosis or an input named nothing or failed."""
        return any(r.error for r in self.records) or bool(self.empty_inputs or self.bad_inputs)


def _head_id(model: ReIQA, head: DiagnosisHead) -> str:
    """What a diagnosis depends on: the model (``model_id``) and the head's numbers."""
    h = hashlib.sha256(model.model_id.encode())
    for array in (
        head.mean,
        head.scale,
        head.coef,
        head.intercept,
        head.severity_coef,
        head.severity_intercept,
    ):
        h.update(array.tobytes())
    h.update(repr((head.classes, head.blocks, head.crop)).encode())
    return h.hexdigest()[:16]


def _stamp(path: str) -> list[int] | None:
    """[size, mtime_ns] of a file (None when it cannot be read): a changed file is done again."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class Partial:
    """The diagnoses made so far for an output: ``.NAME.partial.jsonl`` beside it (a first line
    naming the model and head, then one record per line, each synced when written). Use it under
    the output's lock (``reiqa.outputs.lock_output``).

    ``done``: the records of a previous run with the same model and head, by path, for the files
    unchanged since (other lines, and a torn last line, are ignored)."""

    def __init__(self, output: Path, identity: str) -> None:
        self.path = beside(output, ".partial.jsonl")
        self.identity = identity
        self.done: dict[str, DiagnosisRecord] = {}
        self._file: io.TextIOWrapper | None = None
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            return
        if not isinstance(header, dict) or header.get("identity") != self.identity:
            return  # another model or head: start again
        for line in lines[1:]:
            try:
                row = json.loads(line)
                stamp = row.pop("stamp")
                record = DiagnosisRecord(**row)
            except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
                continue
            if stamp is not None and stamp == _stamp(record.path):
                self.done[record.path] = record

    def __enter__(self) -> Partial:
        self._file = self.path.open("w", encoding="utf-8", errors="surrogateescape")
        self._append({"identity": self.identity})
        for record in self.done.values():  # kept, rewritten: the file never holds stale lines
            self._append({**record.to_dict(), "stamp": _stamp(record.path)}, sync=False)
        self._sync()
        return self

    def _append(self, row: dict, *, sync: bool = True) -> None:
        assert self._file is not None
        self._file.write(json.dumps(row) + "\n")
        if sync:
            self._sync()

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, record: DiagnosisRecord) -> None:
        """Keep one new diagnosis (failures too: their error is the row)."""
        self._append({**record.to_dict(), "stamp": _stamp(record.path)})

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()

    def remove(self) -> None:
        """The output is written: the partial rows are no longer needed."""
        self.path.unlink(missing_ok=True)


def _map_name(path: str, used: set[str]) -> str:
    """``<stem>.png``, or ``<stem>-2.png``, ... when another photo of this run has that stem."""
    stem = Path(path).stem or "image"
    name, k = f"{stem}.png", 1
    while name in used:
        k += 1
        name = f"{stem}-{k}.png"
    used.add(name)
    return name


def map_targets(paths: Sequence[str | Path], folder: Path, *, overwrite: bool = False) -> dict[str, Path]:
    """The heat map file of each path in ``folder``: ``<stem>.png`` (``<stem>-2.png``, ... for
    repeated stems); an existing one is refused without ``overwrite``, before any work, and so is
    an install without matplotlib."""
    require("matplotlib", "plots", "reiqa diagnose --map")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file; --map takes a folder")
    used: set[str] = set()
    targets = {str(p): folder / _map_name(str(p), used) for p in paths}
    for target in targets.values():
        refuse_to_replace(target, overwrite=overwrite)
    return targets


def write_maps(model: ReIQA, records: Sequence[DiagnosisRecord], targets: dict[str, Path]) -> list[Path]:
    """A heat map (``reiqa.diagnose.maps``) of each diagnosed file into its target
    (:func:`map_targets`), titled with its score, issue and severity; files that cannot be read
    again are left out."""
    from reiqa.diagnose.maps import quality_map, write_map

    written = []
    for r in records:
        image = model.prepare(r.path, name=r.path) if r.score is not None else None
        if image is None or isinstance(image, Failure):
            continue
        title = f"{Path(r.path).name}: score {r.score:.1f}, {r.issue} (severity {r.severity:.2f})"
        qmap = quality_map(model, image)
        written.append(
            write_map(
                image,
                qmap,
                targets[r.path],
                title=title,
                higher_is_better=model.higher_is_better,
                score_range=model.score_range,
            )
        )
    return written


def diagnose_inputs(
    inputs: Sequence[str | Path],
    output: Path | None = None,
    *,
    recursive: bool = False,
    model: str | Path = "default",
    device: str = "auto",
    batch_size: int = 8,
    workers: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    map_dir: Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    on_empty: Callable[[str], object] | None = None,
    on_bad: Callable[[str], object] | None = None,
) -> DiagnoseRun:
    """``reiqa diagnose``: expand the inputs (files, folders, globs, CSV lists), load the model
    ('default' or a folder; it must have a diagnosis head), diagnose every file (``progress``
    None: a bar for runs over 20 images) and write ``output`` (csv, jsonl or json, by suffix) and
    the heat maps into ``map_dir``. ``on_empty`` and ``on_bad`` are told of inputs that name no
    image file or cannot be used, before the model is loaded. With ``output``, the run holds its
    lock and resumes a stopped run's partial rows (:class:`Partial`)."""
    if output is not None:
        output_format(output)
        refuse_to_replace(output, overwrite=overwrite)
    with lock_output(output) if output is not None else contextlib.nullcontext():
        return _diagnose_inputs(
            inputs,
            output,
            recursive=recursive,
            model=model,
            device=device,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            map_dir=map_dir,
            overwrite=overwrite,
            progress=progress,
            on_empty=on_empty,
            on_bad=on_bad,
        )


def _diagnose_inputs(
    inputs: Sequence[str | Path],
    output: Path | None,
    *,
    recursive: bool,
    model: str | Path,
    device: str,
    batch_size: int,
    workers: int,
    max_pixels: int | None,
    map_dir: Path | None,
    overwrite: bool,
    progress: bool | None,
    on_empty: Callable[[str], object] | None,
    on_bad: Callable[[str], object] | None,
) -> DiagnoseRun:
    kind = output_format(output) if output is not None else "csv"
    empty: list[str] = []
    bad: list[str] = []
    paths = expand_inputs(inputs, recursive=recursive, empty=empty, bad=bad)
    targets = map_targets(paths, map_dir, overwrite=overwrite) if map_dir is not None else {}
    for item in empty if on_empty is not None else ():
        on_empty(item)
    for message in bad if on_bad is not None else ():
        on_bad(message)
    net = load(None if str(model) == "default" else model, device=device)
    if net.diagnosis is None:
        net.diagnose_files([])  # raises the ModelError that says how to fit a head
    classes = net.diagnosis.classes
    names = [str(p) for p in paths]
    partial = Partial(output, _head_id(net, net.diagnosis)) if output is not None else None
    done = {} if partial is None else {k: v for k, v in partial.done.items() if k in set(names)}
    todo = [p for p, name in zip(paths, names, strict=True) if name not in done]
    shown = len(todo) > 20 if progress is None else progress
    new = net.diagnose_files(
        todo, batch_size=batch_size, workers=workers, progress=shown, max_pixels=max_pixels
    )
    with partial if partial is not None else contextlib.nullcontext():
        for record in new:
            done[record.path] = record
            if partial is not None:
                partial.add(record)
    records = [done[name] for name in names]
    if output is not None:
        write_text_atomic(output, format_rows(kind, records, classes), errors="surrogateescape")
        partial.remove()
    maps = write_maps(net, records, targets) if targets else []
    resumed = len(names) - len(todo)
    return DiagnoseRun(records, classes, net.name, net.higher_is_better, empty, bad, maps, output, resumed)
