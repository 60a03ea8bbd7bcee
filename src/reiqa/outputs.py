"""What reiqa writes for a user: score output files (``.csv``, ``.jsonl``, ``.json``: one writer
at a time, a record of what produced them, torn rows repaired, failed rows retried), and the rule
every writer follows, :func:`refuse_to_replace` (an existing output is replaced only with
``--overwrite``).

An output ``scores.csv`` comes with two hidden files beside it:

- ``.scores.csv.reiqa.json``, the provenance record: which model (an id over its weights and
  regressor), which feature options, and the folder relative paths were named from (copy it
  along with the output to resume the copy). A run that
  resumes an output checks it: scores of two models or two option sets are never mixed in one
  file, and an existing file that reiqa did not write is never touched without ``overwrite``.
- ``.scores.csv.lock``, locked (``flock``) while a run writes, so that a second run on the same
  output stops with a clear error instead of interleaving its rows.

Rows are appended after every batch (flushed and fsynced); a ``.json`` output is built from a
JSON Lines log (``.scores.json.partial.jsonl``) and written whole, atomically, at the end (the
finished file stays in place until then). When a run resumes an output, rows are keyed by the
resolved path of their file (so ``a.jpg`` and ``/abs/a.jpg`` are one file); a torn last row (a
crash, a full disk), rows that do not parse and repeated rows (the last one is kept) are
dropped, and the file is rewritten atomically before new rows are appended. Files that failed are
scored again when a run names them; their old row is replaced when the run ends.

File names that are not valid UTF-8 are kept byte for byte (``surrogateescape``) in CSV and JSON
Lines files, and as ``\\udcXX`` escapes in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reiqa.atomic import write_text_atomic
from reiqa.errors import OutputError

try:  # POSIX; on Windows the lock is skipped (see ScoreOutput._lock)
    import fcntl
except ImportError:  # pragma: no cover - not on this platform
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FIELDS",
    "FORMATS",
    "Provenance",
    "Repair",
    "ScoreOutput",
    "ScoreRecord",
    "beside",
    "lock_output",
    "output_format",
    "refuse_to_replace",
    "take_lock",
]

FIELDS = ("path", "score", "error")
FORMATS = ("csv", "jsonl", "json")
_RECORD_FORMAT = "reiqa-scores-1"
_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


@dataclass(frozen=True)
class ScoreRecord:
    """The score of one image, or the reason it has none: what every scoring path gives
    (``ReIQA.score_files``, the service, the Ray actors) and one row of an output. ``path`` is
    the file as it was named (or the upload's name); ``score`` is finite or None, and then
    ``error`` says why."""

    path: str
    score: float | None
    error: str | None


@dataclass(frozen=True)
class Provenance:
    """What produced the scores of an output: ``model_id`` identifies the weights, the regressor
    and the feature options (two runs with equal ids give equal scores); ``model_name`` and
    ``options`` are there for the messages and for people reading the record."""

    model_id: str
    model_name: str
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.model_name!r} (id {self.model_id}; {opts})"


def output_format(path: Path) -> str:
    """'csv', 'jsonl' or 'json', from the suffix (any case).

    Raises:
        OutputError: another suffix.
    """
    suffix = path.suffix.lower()[1:]
    if suffix not in FORMATS:
        raise OutputError(
            f"{path}: the output must end in .csv, .jsonl or .json (got {path.suffix or 'no suffix'!r})"
        )
    return suffix


def beside(path: Path, tail: str) -> Path:
    """The hidden file ``.NAME<tail>`` next to an output (its record, lock, partial rows, cache)."""
    return path.with_name(f".{path.name}{tail}")


def _write_atomic(path: Path, text: str) -> None:
    write_text_atomic(path, text, errors="surrogateescape")


def _row(path: object, score: object, error: object) -> ScoreRecord | None:
    """A row read back from a file, or None when it is not one of ours (a torn or glued row, a
    block of zeros left by a power loss)."""
    if not isinstance(path, str) or not path or "\x00" in path:
        return None
    if score in (None, "") and isinstance(error, str) and error:
        return ScoreRecord(path, None, error)
    try:
        value = float(score)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or error not in (None, ""):
        return None
    return ScoreRecord(path, value, None)


def _csv_rows(text: str) -> tuple[list[ScoreRecord], int]:
    """(rows, dropped) of a CSV output's complete text."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != list(FIELDS):
        raise ValueError(f"its header is {header}, not {','.join(FIELDS)}")
    rows, dropped = [], 0
    for fields in reader:
        row = _row(*fields) if len(fields) == 3 else None
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    return rows, dropped


def _jsonl_rows(text: str) -> tuple[list[ScoreRecord], int]:
    rows, dropped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            item = None
        row = _row(item.get("path"), item.get("score"), item.get("error")) if isinstance(item, dict) else None
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    return rows, dropped


def _format_rows(kind: str, rows: Iterable[ScoreRecord], *, header: bool) -> str:
    out = io.StringIO(newline="")
    if kind == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(FIELDS)
        for r in rows:
            writer.writerow([r.path, "" if r.score is None else repr(r.score), r.error or ""])
    else:
        for r in rows:
            out.write(json.dumps({"path": r.path, "score": r.score, "error": r.error}) + "\n")
    return out.getvalue()


@dataclass
class Repair:
    """What resuming an output did: torn or unreadable rows dropped, repeated rows dropped (the
    last one kept), files that had failed and are scored again in this run."""

    torn: int = 0
    retried: int = 0
    repeated: int = 0

    def __bool__(self) -> bool:
        return bool(self.torn or self.retried or self.repeated)


class ScoreOutput:
    """An output file opened for a scoring run (a context manager).

    On entering: the suffix and the folder are checked, the lock is taken, the provenance record
    is checked against ``provenance`` (or written, for a new file), the rows already there are
    read and repaired. ``done`` maps the resolved path of each file already scored to its row;
    ``repair`` says what was dropped. ``write`` appends rows; on leaving, a ``.json`` output is
    written whole and the lock is released.

    Args:
        path: the output file.
        provenance: what produces this run's scores.
        overwrite: start the file over, whatever it holds.

    Raises:
        OutputError: a bad suffix or a folder at ``path``; a folder that cannot be written;
            another run writing the same output; an existing file reiqa did not write, or wrote
            with another model or other options (without ``overwrite``); an unreadable file.
    """

    def __init__(self, path: Path, provenance: Provenance, *, overwrite: bool = False) -> None:
        self.path = Path(os.path.realpath(path))  # a link to an output shares its lock and record
        self.kind = output_format(Path(path))
        self.provenance = provenance
        self.overwrite = overwrite
        self.record = beside(self.path, ".reiqa.json")
        self.log = beside(self.path, ".partial.jsonl") if self.kind == "json" else self.path
        self.done: dict[str, ScoreRecord] = {}  # scored rows by resolved path
        self.failed: dict[str, ScoreRecord] = {}  # failed rows by resolved path, until retried
        self.rows: list[ScoreRecord] = []  # every row of the output, in file order (kept and new)
        self.repair = Repair()
        self._superseded: set[str] = set()  # failed rows a new row replaces
        self._lock_fd: int | None = None
        self._file: Any = None
        self._base = Path.cwd()

    # -- entering -------------------------------------------------------------------------------

    def __enter__(self) -> ScoreOutput:
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a folder; give a file name ending in .csv, .jsonl or .json")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{self.path.parent}: cannot create the output folder ({exc.strerror})"
            ) from exc
        self._lock()
        try:
            self._open()
        except BaseException:
            self._unlock()
            raise
        return self

    def _lock(self) -> None:
        self._lock_fd = take_lock(self.path)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _existing(self) -> list[Path]:
        """The files holding the rows: the log of an unfinished ``.json`` run holds them all (it
        took the finished file's rows when it started), else the output itself."""
        found = [p for p in dict.fromkeys((self.log, self.path)) if p.is_file() and p.stat().st_size > 0]
        return found[:1]

    def _open(self) -> None:
        existing = self._existing()
        if existing and not self.overwrite:
            self._check_record()
            self._read(existing[0])
        else:
            self.log.unlink(missing_ok=True)
            if self.kind != "json":
                self.path.unlink(missing_ok=True)  # a .json is replaced whole on leaving
        record = {"format": _RECORD_FORMAT, "base": os.fsdecode(self._base), **self.provenance.__dict__}
        if not existing or self.overwrite:
            _write_atomic(self.record, json.dumps(record, indent=1) + "\n")
        new = not self.log.is_file() or self.log.stat().st_size == 0
        self._file = open(self.log, "a", newline="", **_ENCODING)  # noqa: SIM115 - closed in __exit__
        if new and self.kind == "csv":
            self._append(_format_rows("csv", (), header=True))

    def _check_record(self) -> None:
        fix = "pass --overwrite to start it over, or give another --output"
        try:
            record = json.loads(self.record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OutputError(
                f"{self.path}: exists and was not written by this version of reiqa score (no "
                f"{self.record.name} beside it; copy it along with the output); {fix}"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OutputError(f"{self.record}: unreadable provenance record ({exc}); {fix}") from exc
        if not isinstance(record, dict) or record.get("format") != _RECORD_FORMAT:
            raise OutputError(f"{self.record}: not a reiqa provenance record; {fix}")
        for name, kind in (("model_id", str), ("model_name", str), ("options", dict), ("base", str)):
            if not isinstance(record.get(name), kind):
                raise OutputError(f"{self.record}: field {name!r} is not a {kind.__name__}; {fix}")
        theirs = Provenance(record["model_id"], record["model_name"], record["options"])
        if theirs.model_id != self.provenance.model_id or theirs.options != self.provenance.options:
            raise OutputError(
                f"{self.path}: holds scores of {theirs.describe()}; this run uses "
                f"{self.provenance.describe()}. Scores of two models or option sets must not be "
                f"mixed in one file: {fix}"
            )
        base = Path(record["base"])
        # relative rows were named from this folder; if it moved, from where the output is now
        self._base = base if base.is_dir() else self.path.parent

    def _read(self, source: Path) -> None:
        if source == self.path and self.kind == "json":
            rows = self._read_json(source)
        else:
            data = source.read_text(**_ENCODING)
            complete = data[: data.rfind("\n") + 1]  # a last line without its newline is torn
            self.repair.torn += bool(data[len(complete) :].strip())
            try:
                rows, dropped = (_csv_rows if self.kind == "csv" else _jsonl_rows)(complete)
            except (ValueError, csv.Error) as exc:
                raise OutputError(
                    f"{source}: not a reiqa score table ({exc}); pass --overwrite to start it over, or "
                    "give another --output"
                ) from exc
            self.repair.torn += dropped
        kept: dict[str, ScoreRecord] = {}
        for row in rows:
            key = self._resolve(self._base, row.path)
            if key in kept:
                self.repair.repeated += 1
                del kept[key]  # the later row wins, in the later place
            kept[key] = row
        self.rows = list(kept.values())
        self.done = {k: r for k, r in kept.items() if r.score is not None}
        self.failed = {k: r for k, r in kept.items() if r.score is None}
        if self.repair or self.kind == "json":
            # a .json output is rebuilt from the log on leaving, so the log takes all its rows
            header = self.kind == "csv"
            _write_atomic(self.log, _format_rows("csv" if header else "jsonl", self.rows, header=header))

    def _read_json(self, path: Path) -> list[ScoreRecord]:
        try:
            items = json.loads(path.read_text(**_ENCODING))
        except (OSError, json.JSONDecodeError) as exc:
            raise OutputError(f"{path}: unreadable JSON ({exc}); pass --overwrite to start it over") from exc
        if not isinstance(items, list):
            raise OutputError(f"{path}: not a reiqa score list; pass --overwrite to start it over")
        rows = [
            _row(i.get("path"), i.get("score"), i.get("error")) if isinstance(i, dict) else None
            for i in items
        ]
        self.repair.torn += sum(r is None for r in rows)
        return [r for r in rows if r is not None]

    # -- keys and writing ----------------------------------------------------------------------

    @staticmethod
    def _resolve(base: Path, path: str | os.PathLike[str]) -> str:
        try:
            return os.path.normcase(os.path.realpath(base / os.fspath(path)))
        except ValueError:  # a NUL byte: no such file can exist, keep the name as it is
            return os.fspath(path)

    def key(self, path: str | os.PathLike[str]) -> str:
        """The resolved path a file named in this run is known by (rows read from the file are
        resolved from the folder the output's first run was started in)."""
        return self._resolve(Path.cwd(), path)

    def todo(self, paths: Iterable[Path]) -> list[Path]:
        """The paths not yet scored in this output, each file once (by resolved path); files
        that failed before are among them, and counted in ``repair.retried``."""
        out: dict[str, Path] = {}
        for p in paths:
            key = self.key(p)
            if key not in self.done and key not in out:
                out[key] = p
        self.repair.retried = sum(key in self.failed for key in out)
        return list(out.values())

    def failures(self) -> int:
        """Rows of the output that hold no score (after this run's rows)."""
        return sum(r.score is None for r in self.rows)

    def _append(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, rows: Iterable[ScoreRecord]) -> None:
        """Append rows (flushed to disk). A relative path is written as given when this run
        started in the output's base folder, else made absolute, so it resolves the same later.
        A row for a file that failed before replaces that row (in the file when the run ends)."""
        cwd = Path.cwd()
        fixed = []
        for r in rows:
            if cwd != self._base and not os.path.isabs(r.path):
                r = ScoreRecord(os.path.abspath(r.path), r.score, r.error)
            key = self._resolve(self._base, r.path)
            if key in self.failed:
                self._superseded.add(key)
            fixed.append(r)
        self.rows.extend(fixed)
        self._append(_format_rows("csv" if self.kind == "csv" else "jsonl", fixed, header=False))

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._file is not None:
                self._file.close()
            if self._superseded:  # drop the old rows of retried files: the last row of a file wins
                keys = [self._resolve(self._base, r.path) for r in self.rows]  # one realpath per row
                last = {key: i for i, key in enumerate(keys)}
                self.rows = [
                    r for i, (r, key) in enumerate(zip(self.rows, keys, strict=True)) if last[key] == i
                ]
                if self.kind != "json":
                    header = self.kind == "csv"
                    _write_atomic(
                        self.log, _format_rows("csv" if header else "jsonl", self.rows, header=header)
                    )
            if self.kind == "json":
                items = [{"path": r.path, "score": r.score, "error": r.error} for r in self.rows]
                _write_atomic(self.path, json.dumps(items, indent=1) + "\n")
                self.log.unlink(missing_ok=True)
        finally:
            self._unlock()


def take_lock(output: Path) -> int:
    """Lock ``.NAME.lock`` beside ``output`` (``flock``, POSIX) so that one run writes the output
    at a time; returns the descriptor, whose closing releases the lock.

    Raises:
        OutputError: the folder cannot be written, or another run holds the lock.
    """
    lock = beside(output, ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"{output}: cannot write in {output.parent} ({exc.strerror})") from exc
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise OutputError(
                f"{output}: another reiqa run is writing this output (it holds {lock.name}); "
                "wait for it to finish, or give another --output"
            ) from exc
    return fd


@contextmanager
def lock_output(output: Path) -> Iterator[None]:
    """:func:`take_lock` for the ``with`` block (``output``'s real path: a link to an output
    shares its lock)."""
    fd = take_lock(Path(os.path.realpath(output)))
    try:
        yield
    finally:
        os.close(fd)


def refuse_to_replace(target: Path, *, overwrite: bool, files: tuple[str, ...] = ()) -> None:
    """The rule of every writer: an existing file is replaced only with ``overwrite``.

    ``target`` is the file to write or, with ``files``, the folder that the named files go into
    (a regressor, a model folder); a folder at a file's place, or a file at a folder's, is an
    error either way.

    Raises:
        OutputError: naming what exists and the option that allows replacing it.
    """
    target = Path(target)
    if not files:
        if target.is_dir():
            raise OutputError(f"{target}: is a folder; give a file name")
        if target.exists() and not overwrite:
            raise OutputError(f"{target}: exists; pass --overwrite to replace it, or give another name")
        return
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: is a file; give a folder name")
    there = [name for name in files if (target / name).exists()]
    if there and not overwrite:
        raise OutputError(
            f"{target}: already holds {', '.join(there)}; pass --overwrite to replace them, or give "
            "another folder"
        )
