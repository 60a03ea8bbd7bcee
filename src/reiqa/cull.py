"""Near-duplicate photos grouped, each group ranked by quality, the best kept (``reiqa cull``).

On arrays (no model): :func:`similar_pairs` finds every pair of unit embeddings whose cosine
similarity reaches a threshold, tile by tile, so memory grows with the number of photos and
pairs, never with its square; :func:`group_embeddings` joins the pairs into groups (single
linkage: the connected components) and marks the best ``keep`` of each by score.

On files (a model): :func:`score_and_embed` runs each file once through the encoders
(``features.iter_features``, the pass that ``reiqa score`` makes), giving both its score (the
regressor on the whole feature vector) and its embedding (the content encoder's head averages at
full and half scale, :data:`EMBEDDING`); with a cache folder, both are kept by file content
after every batch (``features.FeatureCache``), so a stopped run loses at most one batch and the
next one computes only what is missing. :func:`cull_files` groups and ranks the files,
:func:`write_cull` writes the rows (``path, group, score, keep, error``) whole, atomically,
:func:`link_keepers` links the keepers into a folder. :func:`cull_inputs` is ``reiqa cull``.

Nothing here deletes, moves or replaces a user's file.
"""

from __future__ import annotations

import contextlib
import csv
import filecmp
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import numpy as np

from reiqa.atomic import write_text_atomic
from reiqa.digest import file_sha256
from reiqa.errors import ConfigError, OutputError
from reiqa.features import FeatureCache, FeatureModel, FeatureRow, iter_features
from reiqa.inference import ReIQA, load
from reiqa.inference.pipeline import record
from reiqa.inputs import expand_inputs
from reiqa.io import DEFAULT_MAX_PIXELS
from reiqa.outputs import ScoreRecord, beside, lock_output, output_format

#: the default ``--similarity``, chosen by benchmarks/cull_threshold.py on bursts made from BSDS500
#: train photos (the highest recall with groups 99 % precise); on bursts of other photos (BSDS500
#: test and Kodak) its groups are 97.2 % precise and hold 66.3 % of the pairs of shots of one
#: scene (docs/reports/cull-threshold.json)
DEFAULT_SIMILARITY = 0.79

#: rows of one tile side in :func:`similar_pairs`: a tile is BLOCK x BLOCK float32 (16 MiB)
BLOCK = 2048


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (a zero row stays zero: similar to nothing)."""
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Pairs:
    """Pairs of rows (``first`` < ``second``) and their cosine similarity."""

    first: np.ndarray  # (m,) int64
    second: np.ndarray  # (m,) int64
    similarity: np.ndarray  # (m,) float32

    def __len__(self) -> int:
        return len(self.first)


def similar_pairs(unit: np.ndarray, similarity: float, *, block: int = BLOCK) -> Pairs:
    """Every pair i < j of rows of ``unit`` (n, d), L2-normalised, with ``unit[i] @ unit[j] >=
    similarity``: exact, computed over tiles of ``block`` x ``block`` similarities (the upper
    triangle of the n x n matrix, one tile at a time)."""
    if block < 1:
        raise ConfigError(f"block must be at least 1, got {block}")
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    n = len(unit)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for a in range(0, n, block):
        rows = unit[a : a + block]
        for b in range(a, n, block):
            tile = rows @ unit[b : b + block].T
            i, j = np.nonzero(tile >= similarity)
            if a == b:
                upper = i < j
                i, j = i[upper], j[upper]
            found.append((i + a, j + b, tile[i, j]))
    if not found:
        empty = np.zeros(0, np.int64)
        return Pairs(empty, empty, np.zeros(0, np.float32))
    first, second, sims = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return Pairs(first.astype(np.int64), second.astype(np.int64), sims.astype(np.float32))


@dataclass(frozen=True)
class Groups:
    """Row i belongs to group ``group[i]`` (0, 1, ... numbered by the order of each group's first
    row), is ``rank[i]``-th best of it by score (0: the best) and is kept when ``keep[i]``."""

    group: np.ndarray  # (n,) int64
    rank: np.ndarray  # (n,) int64
    keep: np.ndarray  # (n,) bool

    @property
    def count(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0


def components(n: int, pairs: Pairs) -> np.ndarray:
    """Single linkage: the connected components of the pair graph, numbered by their first row.

    A vectorised union-find over the edge list (numpy only): every row points to a row no later
    than itself; each round hooks the later of the two roots of every edge that joins two trees
    onto the earlier one, then flattens the trees (pointer jumping), until no edge joins two
    trees. Each round removes a root, and the roots that remain are the first rows of their
    components."""
    parent = np.arange(n, dtype=np.int64)
    first, second = np.asarray(pairs.first, np.int64), np.asarray(pairs.second, np.int64)
    while True:
        a, b = parent[first], parent[second]
        apart = a != b
        if not apart.any():
            return _renumber(parent)
        a, b = a[apart], b[apart]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        while not np.array_equal(jumped := parent[parent], parent):
            parent = jumped


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in the order of their first row."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.empty(len(first), np.int64)
    order[np.argsort(first, kind="stable")] = np.arange(len(first))
    return order[inverse.reshape(-1)]


def rank_in_groups(group: np.ndarray, scores: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """Each row's place in its group by score (0: the best; ties: the earlier row first)."""
    n = len(group)
    key = -np.asarray(scores, np.float64) if higher_is_better else np.asarray(scores, np.float64)
    order = np.lexsort((np.arange(n), key, group))
    ranked = np.empty(n, np.int64)
    sorted_groups = group[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    ranked[order] = np.arange(n) - starts
    return ranked


def group_embeddings(
    unit: np.ndarray,
    scores: np.ndarray,
    *,
    similarity: float,
    keep: int = 1,
    higher_is_better: bool = True,
    block: int = BLOCK,
) -> Groups:
    """Groups of near-duplicates among the rows of ``unit`` (n, d), L2-normalised: two rows
    whose cosine similarity reaches ``similarity`` are in one group, and so are their groups
    (single linkage). The best ``keep`` rows of each group by ``scores`` are kept."""
    if keep < 1:
        raise ConfigError(f"keep must be at least 1, got {keep}")
    if not -1.0 <= similarity <= 1.0:
        raise ConfigError(f"similarity must be in [-1, 1], got {similarity}")
    scores = np.asarray(scores, np.float64)
    if len(scores) != len(unit):
        raise ValueError(f"{len(scores)} scores for {len(unit)} embeddings")
    group = components(len(unit), similar_pairs(unit, similarity, block=block))
    rank = rank_in_groups(group, scores, higher_is_better=higher_is_better)
    return Groups(group, rank, rank < keep)


# -- files: one pass for the score and the embedding, cached by content -------------------------

#: what the embedding is: the global average of the content encoder's last map at full and at half
#: scale, each scaled to unit length, side by side (so that a cosine similarity is the mean of the
#: two scales' cosines). Measured by benchmarks/cull_threshold.py against the full scale alone,
#: the half scale alone and the blocks with their stages' averages (docs/reports/cull-threshold.json).
EMBEDDING = {"blocks": ["content_full", "content_half"], "part": "head"}


def embedding_columns(features: FeatureModel) -> list[slice]:
    """The columns of ``features``' vectors that make the embedding (:data:`EMBEDDING`), one
    range per block."""
    starts, pos = {}, 0
    for name, width in features.blocks():
        starts[name] = pos
        pos += width
    missing = [b for b in EMBEDDING["blocks"] if b not in starts]
    if missing:
        raise ConfigError(
            f"reiqa cull needs a model with a content encoder (its {', '.join(missing)} features); this "
            f"one gives {list(starts)}"
        )
    width = _head_width(features)
    return [slice(starts[b], starts[b] + width) for b in EMBEDDING["blocks"]]


def _head_width(features: FeatureModel) -> int:
    """The width of the global average of the content encoder's last map, the first columns of
    each of its blocks whatever the pooling."""
    head = getattr(features.content, "gap_dim", None)
    if features.pooling == "gap":
        return dict(features.blocks())["content_full"]
    if not isinstance(head, int):
        raise ConfigError(
            f"the content encoder run by {features.engine.name} does not say where its head's average "
            "ends in its pooled features; cull with the torch engine"
        )
    return head


def embed(rows: np.ndarray, columns: Sequence[slice]) -> np.ndarray:
    """Unit embeddings of feature rows (n, D): each range of ``columns`` scaled to unit length,
    side by side, scaled to unit length."""
    rows = np.asarray(rows, np.float32).reshape(len(rows), -1)
    return normalise(np.concatenate([normalise(rows[:, c]) for c in columns], axis=1))


@dataclass
class Embedded:
    """The score record of each file (in the order given) and its unit embedding (a zero row
    for a file without a score); ``cached``: files whose numbers came from the cache."""

    records: list[ScoreRecord]
    unit: np.ndarray  # (n, d) float32
    cached: int = 0


def cache_id(model: ReIQA) -> str:
    """What a cache's rows depend on: the model's id (weights, options, regressor) and the
    embedding's definition."""
    h = hashlib.sha256(model.model_id.encode())
    h.update(json.dumps(EMBEDDING, sort_keys=True).encode())
    return "cull-" + h.hexdigest()[:16]


def _digest(path: Path) -> str:
    """The content hash of a regular file; '' for anything else (never cached)."""
    try:
        return file_sha256(path) if path.is_file() else ""
    except OSError:
        return ""


def score_and_embed(
    model: ReIQA,
    paths: Sequence[str | Path],
    *,
    cache: str | Path | None = None,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Embedded:
    """Score and embed files with one pass of the encoders each (the pass and the scores of
    ``model.score_files``, kept as float32 so that cached and new scores are equal). Unreadable
    files get a record with their error. With ``cache`` (a folder), files already there (by
    content) are not read again, and every batch's new rows are added to it before the next
    batch starts."""
    paths = [Path(p) for p in paths]
    columns = embedding_columns(model.features)
    store = FeatureCache(cache, cache_id(model)) if cache is not None else None
    digests = [_digest(p) if store is not None else "" for p in paths]
    width = sum(c.stop - c.start for c in columns)
    out = Embedded([ScoreRecord(str(p), None, "") for p in paths], np.zeros((len(paths), width), np.float32))
    todo = []
    for i, digest in enumerate(digests):
        if store is not None and digest in store:
            row = store.get(digest)
            out.records[i], out.unit[i] = ScoreRecord(str(paths[i]), float(row[0]), None), row[1:]
        else:
            todo.append(i)
    out.cached = len(paths) - len(todo)
    batches = iter_features(
        model.features,
        [paths[i] for i in todo],
        options=model.options,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        max_pixels=max_pixels,
    )
    for batch in batches:
        new = _score_batch(model, batch, [todo[r.index] for r in batch], columns, out)
        if store is not None and (keys := [digests[i] for i in new if digests[i]]):
            rows = [np.concatenate([[out.records[i].score], out.unit[i]]) for i in new if digests[i]]
            store.add(keys, np.stack(rows))
    return out


def _score_batch(
    model: ReIQA, batch: list[FeatureRow], where: list[int], columns: list[slice], out: Embedded
) -> list[int]:
    """Records and embeddings of one batch of feature rows into ``out`` (row ``where[k]`` of it
    for ``batch[k]``); returns the rows that got a score."""
    good = [k for k, r in enumerate(batch) if r.features is not None]
    values = model.regressor.predict(np.stack([batch[k].features for k in good])) if good else []
    scored = []
    for k, value in zip(good, values, strict=True):
        i = where[k]
        out.records[i] = record(out.records[i].path, float(value))
        if out.records[i].score is not None:
            out.records[i] = ScoreRecord(out.records[i].path, float(np.float32(value)), None)
            out.unit[i] = embed(batch[k].features[None], columns)[0]
            scored.append(i)
    for k, r in enumerate(batch):
        if r.features is None:
            out.records[where[k]] = ScoreRecord(out.records[where[k]].path, None, r.error)
    return scored


# -- groups of files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CullRecord:
    """One row of a cull: the file as named, its group (1, 2, ...; None for a file that could
    not be read), its score, whether it is kept, and why a file has no score."""

    path: str
    group: int | None
    score: float | None
    keep: bool
    error: str | None


@dataclass
class Culled:
    """The rows of a cull (group 1 first, each group best first; files without a score last),
    how many groups, and how many files came from the cache."""

    records: list[CullRecord]
    groups: int
    cached: int = 0

    @property
    def kept(self) -> int:
        return sum(r.keep for r in self.records)

    @property
    def failed(self) -> int:
        return sum(r.score is None for r in self.records)


def group_records(
    records: Sequence[ScoreRecord],
    unit: np.ndarray,
    *,
    similarity: float = DEFAULT_SIMILARITY,
    keep: int = 1,
    higher_is_better: bool = True,
    block: int = BLOCK,
) -> Culled:
    """Group scored files by their unit embeddings (row i of ``unit`` is ``records[i]``'s):
    groups are numbered 1, 2, ... in the order of each group's first record; records without a
    score are reported last and never grouped."""
    ok = [i for i, r in enumerate(records) if r.score is not None]
    scores = np.array([records[i].score for i in ok], np.float64)
    found = group_embeddings(
        unit[ok], scores, similarity=similarity, keep=keep, higher_is_better=higher_is_better, block=block
    )
    rows = [
        CullRecord(records[i].path, int(found.group[k]) + 1, records[i].score, bool(found.keep[k]), None)
        for k, i in enumerate(ok)
    ]
    ordered = [rows[k] for k in np.lexsort((found.rank, found.group))]
    failed = [CullRecord(r.path, None, None, False, r.error) for r in records if r.score is None]
    return Culled(ordered + failed, found.count)


def cull_files(
    model: ReIQA,
    paths: Sequence[str | Path],
    *,
    similarity: float = DEFAULT_SIMILARITY,
    keep: int = 1,
    cache: str | Path | None = None,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Culled:
    """Near-duplicate groups among image files, each ranked by ``model``'s score, its best
    ``keep`` kept. The files are taken in sorted order (so group numbers do not depend on the
    order they were named in); ``cache`` (a folder) makes the run resumable
    (:func:`score_and_embed`)."""
    ordered = sorted((Path(p) for p in paths), key=lambda p: os.fsencode(p))
    embedded = score_and_embed(
        model,
        ordered,
        cache=cache,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        max_pixels=max_pixels,
    )
    culled = group_records(
        embedded.records,
        embedded.unit,
        similarity=similarity,
        keep=keep,
        higher_is_better=model.higher_is_better,
    )
    culled.cached = embedded.cached
    return culled


# -- the output file and the keepers' links ----------------------------------------------------

FIELDS = ("path", "group", "score", "keep", "error")
_RECORD_FORMAT = "reiqa-cull-1"


def format_rows(kind: str, records: Sequence[CullRecord]) -> str:
    """The rows as a ``kind`` ('csv', 'jsonl', 'json') file's text."""
    items = [dict(zip(FIELDS, (r.path, r.group, r.score, r.keep, r.error), strict=True)) for r in records]
    if kind == "json":
        return json.dumps(items, indent=1) + "\n"
    if kind == "jsonl":
        return "".join(json.dumps(item) + "\n" for item in items)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for r in records:
        score = "" if r.score is None else repr(r.score)
        writer.writerow(
            [r.path, "" if r.group is None else r.group, score, str(r.keep).lower(), r.error or ""]
        )
    return out.getvalue()


def write_cull(output: Path, culled: Culled, about: dict[str, object]) -> None:
    """The rows into ``output`` (.csv, .jsonl or .json), whole (atomically), and ``about`` (what
    produced them) into the record beside it, ``.NAME.reiqa.json``."""
    output = Path(output)
    write_text_atomic(output, format_rows(output_format(output), culled.records), errors="surrogateescape")
    record_text = json.dumps({"format": _RECORD_FORMAT, **about}, indent=1) + "\n"
    write_text_atomic(beside(output, ".reiqa.json"), record_text)


def check_output(output: Path, *, overwrite: bool) -> None:
    """An output may be written when it does not exist, was written by ``reiqa cull`` (its
    record is beside it: each run writes it anew), or with ``overwrite``.

    Raises:
        OutputError: a bad suffix, a folder, or a file that ``reiqa cull`` did not write.
    """
    output_format(output)
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name ending in .csv, .jsonl or .json")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output.parent}: cannot create the output folder ({exc.strerror})") from exc
    if not output.exists() or overwrite:
        return
    try:
        about = json.loads(beside(output, ".reiqa.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        about = None
    if not isinstance(about, dict) or about.get("format") != _RECORD_FORMAT:
        raise OutputError(
            f"{output}: exists and was not written by reiqa cull; pass --overwrite to replace it, or "
            "give another --output"
        )


@dataclass(frozen=True)
class Link:
    """A keeper placed in the keepers' folder: ``how`` is 'hard link', 'symbolic link', 'copy'
    or 'already there' (an earlier run placed it)."""

    source: Path
    target: Path
    how: str


def link_keepers(culled: Culled, folder: str | Path) -> list[Link]:
    """Each kept file placed in ``folder`` under its own name: a hard link, else (another
    device, a file system without them) a symbolic link, else a copy. A name taken by another
    file gets a number (``IMG_1-1.jpg``); nothing in ``folder`` is ever replaced, and a keeper
    already there (the same file, or a copy with the same bytes) is not placed twice."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [_place(Path(r.path), folder) for r in culled.records if r.keep]


def _place(source: Path, folder: Path) -> Link:
    for k in count():
        target = folder / (source.name if k == 0 else f"{source.stem}-{k}{source.suffix}")
        if os.path.lexists(target):
            if _same(source, target):
                return Link(source, target, "already there")
            continue
        for how, make in (("hard link", os.link), ("symbolic link", _symlink), ("copy", _copy_new)):
            try:
                make(source, target)
            except FileExistsError:
                break  # taken meanwhile: the next name
            except OSError:
                if how == "copy":
                    raise
                continue
            return Link(source, target, how)
    raise AssertionError("unreachable")  # pragma: no cover - count() never ends


def _same(source: Path, target: Path) -> bool:
    """Whether ``target`` is ``source`` (a link to it) or a whole copy of its bytes."""
    try:
        return os.path.samefile(source, target) or (
            target.is_file() and not target.is_symlink() and filecmp.cmp(source, target, shallow=False)
        )
    except OSError:
        return False


def _symlink(source: Path, target: Path) -> None:
    os.symlink(os.path.abspath(source), target)


def _copy_new(source: Path, target: Path) -> None:
    """A copy of ``source`` at ``target``, which must not exist (never replaced); a copy that
    fails half-way is removed."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        try:
            shutil.copyfileobj(src, dst)
        except BaseException:
            dst.close()
            target.unlink(missing_ok=True)
            raise
    shutil.copystat(source, target)


# -- reiqa cull ------------------------------------------------------------------------------------


@dataclass
class CullRun:
    """What ``reiqa cull`` did: the cull, the keepers' links, the inputs that named no image file
    or could not be used, the model's name and where the output and the cache are."""

    culled: Culled
    links: list[Link] = field(default_factory=list)
    empty_inputs: list[str] = field(default_factory=list)
    bad_inputs: list[str] = field(default_factory=list)
    model_name: str = ""
    output: Path | None = None
    cache: Path | None = None

    @property
    def failed(self) -> bool:
        """Whether a file could not be read, or an input named nothing or could not be used."""
        return bool(self.culled.failed or self.empty_inputs or self.bad_inputs)


def cull_inputs(
    inputs: Sequence[str | Path],
    output: Path | None = None,
    *,
    similarity: float = DEFAULT_SIMILARITY,
    keep: int = 1,
    link_to: Path | None = None,
    cache: Path | None = None,
    recursive: bool = False,
    model: str | Path = "default",
    device: str = "auto",
    batch_size: int = 8,
    workers: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
    progress: bool | None = None,
    on_problem: Callable[[str], object] | None = None,
) -> CullRun:
    """``reiqa cull``: expand the inputs (files, folders, globs, CSV lists), score and embed each
    file once (cached in ``cache``, by default ``.NAME.cache`` beside ``output``), group, rank,
    write ``output`` whole (or nothing: the caller prints the rows) and link the keepers into
    ``link_to``. One run writes an output at a time (its lock). ``on_problem`` is told of each
    input that names no image file or cannot be used, before the model is loaded."""
    if output is not None:
        check_output(output, overwrite=overwrite)
        cache = cache if cache is not None else beside(Path(output), ".cache")
    run = CullRun(Culled([], 0), output=output, cache=cache)
    paths = expand_inputs(inputs, recursive=recursive, empty=run.empty_inputs, bad=run.bad_inputs)
    for item in run.empty_inputs:
        (on_problem or _ignore)(f"{item}: no image files found there")
    for message in run.bad_inputs:
        (on_problem or _ignore)(message)
    with lock_output(output) if output is not None else contextlib.nullcontext():
        net = load(model, device=device, images=len(paths))
        run.model_name = net.name
        run.culled = cull_files(
            net,
            paths,
            similarity=similarity,
            keep=keep,
            cache=cache,
            batch_size=batch_size,
            workers=workers,
            progress=len(paths) > 20 if progress is None else progress,
            max_pixels=max_pixels,
        )
        if output is not None:
            about = {"model_id": net.model_id, "model_name": net.name, "embedding": EMBEDDING}
            write_cull(output, run.culled, {**about, "similarity": similarity, "keep": keep})
    if link_to is not None:
        run.links = link_keepers(run.culled, link_to)
    return run


def _ignore(_: str) -> None:
    pass
