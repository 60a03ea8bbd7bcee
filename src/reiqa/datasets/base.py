"""The two types every dataset loader shares: ``DatasetSpec`` (one row of the registry, declared
with ``dataset_spec`` and a ``Scale``) and ``LabelTable`` (what a loader returns). Their errors are
``reiqa.errors.DatasetError``.

A loader reads the label files in the form the database is published, from a folder the user
names, checks that every listed image exists (it never decodes one), and returns a LabelTable.
Nothing is downloaded, ever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("synthetic", "authentic", "ai-generated")
SCORES = ("MOS", "DMOS", "Elo")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """One IQA database: what its scores mean and how to load it.

    Attributes:
        name: registry key, e.g. ``"kadid10k"``.
        title: the database's own name, e.g. ``"KADID-10k"``.
        kind: ``"synthetic"`` (reference images plus distorted versions), ``"authentic"``
            (in-the-wild photographs) or ``"ai-generated"``.
        score: the subjective score as published: ``"MOS"``, ``"DMOS"`` or ``"Elo"``.
        score_range: nominal (low, high) of the score scale; a few values may fall outside.
        higher_is_better: direction of the score (DMOS is usually lower-is-better, but not always:
            KADID-10k's "DMOS" is higher-is-better).
        official_split: whether the database publishes a train/val/test assignment that the
            loader reads into ``LabelTable.split``.
        load: ``load(root) -> LabelTable``.
        citation: the paper to cite.
    """

    name: str
    title: str
    kind: str  # "synthetic" | "authentic" | "ai-generated"
    score: str  # "MOS" | "DMOS" | "Elo"
    score_range: tuple[float, float]
    higher_is_better: bool
    official_split: bool
    load: Callable[[Path], LabelTable]
    citation: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"DatasetSpec {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.score not in SCORES:
            raise ValueError(f"DatasetSpec {self.name!r}: score must be one of {SCORES}, got {self.score!r}")
        low, high = self.score_range
        if not low < high:
            raise ValueError(
                f"DatasetSpec {self.name!r}: score_range must be (low, high), got {self.score_range}"
            )

    def table(
        self,
        root: Path,
        paths: Sequence[Path],
        scores: Sequence[float] | np.ndarray,
        *,
        std: Sequence[float] | np.ndarray | None = None,
        reference: list[str] | None = None,
        distortion: list[str] | None = None,
        split: list[str] | None = None,
    ) -> LabelTable:
        """The LabelTable of this database: its name, score direction and range come from here."""
        return LabelTable(
            dataset=self.name,
            root=root,
            paths=list(paths),
            scores=np.asarray(scores, dtype=np.float64),
            std=None if std is None else np.asarray(std, dtype=np.float64),
            reference=reference,
            distortion=distortion,
            split=split,
            higher_is_better=self.higher_is_better,
            score_range=self.score_range,
        )


@dataclass(frozen=True)
class Scale:
    """A database's score as published, in one declaration: ``Scale("DMOS", 0, 100, higher_is_better=False)``.

    Attributes:
        score: ``"MOS"``, ``"DMOS"`` or ``"Elo"``.
        low, high: the nominal range of the scale.
        higher_is_better: the direction of the score.
    """

    score: str
    low: float
    high: float
    higher_is_better: bool


def dataset_spec(
    *,
    name: str,
    title: str,
    kind: str,
    scale: Scale,
    official_split: bool,
    load: Callable[[Path], LabelTable],
    citation: str,
) -> DatasetSpec:
    """The DatasetSpec of one database, its score given as one ``Scale``."""
    return DatasetSpec(
        name=name,
        title=title,
        kind=kind,
        score=scale.score,
        score_range=(float(scale.low), float(scale.high)),
        higher_is_better=scale.higher_is_better,
        official_split=official_split,
        load=load,
        citation=citation,
    )


@dataclass
class LabelTable:
    """The labelled images of one database, one entry per image, all lists in the same order.

    Attributes:
        dataset: the registry name (or the CSV file's stem for ``load_csv``).
        root: the folder the user named.
        paths: (n,) image files; every one existed when the table was loaded.
        scores: (n,) float64 subjective scores, in the database's own scale and direction.
        std: (n,) float64 standard deviation of the ratings per image, or None when not published.
        reference: (n,) content id (the reference image each image was made from); required for
            synthetic sets so that splits can keep a content on one side.
        distortion: (n,) distortion type name; synthetic sets only.
        split: (n,) the official assignment, each ``"train"``, ``"val"`` or ``"test"``.
        higher_is_better: direction of ``scores``.
        score_range: nominal (low, high) of the scale.
    """

    dataset: str
    root: Path
    paths: list[Path]
    scores: np.ndarray
    std: np.ndarray | None
    reference: list[str] | None
    distortion: list[str] | None
    split: list[str] | None
    higher_is_better: bool
    score_range: tuple[float, float]

    def __post_init__(self) -> None:
        n = len(self.paths)
        self.paths = [Path(p) for p in self.paths]
        self.root = Path(self.root)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.shape != (n,):
            raise ValueError(
                f"LabelTable {self.dataset}: scores has shape {self.scores.shape}, expected ({n},)"
            )
        if self.std is not None:
            self.std = np.asarray(self.std, dtype=np.float64)
            if self.std.shape != (n,):
                raise ValueError(
                    f"LabelTable {self.dataset}: std has shape {self.std.shape}, expected ({n},)"
                )
        for field_name in ("reference", "distortion", "split"):
            values = getattr(self, field_name)
            if values is not None:
                values = [str(v) for v in values]
                setattr(self, field_name, values)
                if len(values) != n:
                    raise ValueError(
                        f"LabelTable {self.dataset}: {field_name} has {len(values)} entries, expected {n}"
                    )
        if self.split is not None:
            bad = sorted(set(self.split) - set(SPLITS))
            if bad:
                raise ValueError(f"LabelTable {self.dataset}: split values must be in {SPLITS}, got {bad}")
        self.score_range = (float(self.score_range[0]), float(self.score_range[1]))

    def __len__(self) -> int:
        return len(self.paths)

    def split_indices(self, part: str) -> list[int]:
        """The positions of the items in ``part`` ('train', 'val' or 'test') of the official split.

        Raises:
            ValueError: the table has no official split, or ``part`` is not a split part.
        """
        if self.split is None:
            raise ValueError(f"LabelTable {self.dataset}: no official split")
        if part not in SPLITS:
            raise ValueError(f"split part must be one of {SPLITS}, got {part!r}")
        return [i for i, s in enumerate(self.split) if s == part]

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelTable:
        """A new table with the entries at ``indices`` (integers, in the order given).

        For a boolean mask pass ``np.flatnonzero(mask)``.

        Raises:
            TypeError: indices are not integers.
            IndexError: an index is out of range.
        """
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64).reshape(0)
        if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(
                f"indices must be integers, got dtype {idx.dtype}; "
                "for a boolean mask pass np.flatnonzero(mask)"
            )
        if idx.ndim != 1:
            raise TypeError(f"indices must be one-dimensional, got shape {idx.shape}")
        n = len(self)
        bad = idx[(idx >= n) | (idx < -n)]
        if bad.size:
            raise IndexError(f"index {int(bad[0])} is out of range for {self.dataset} with {n} images")
        picks = idx.tolist()

        def take(values: list[str] | None) -> list[str] | None:
            return None if values is None else [values[i] for i in picks]

        return LabelTable(
            dataset=self.dataset,
            root=self.root,
            paths=[self.paths[i] for i in picks],
            scores=self.scores[idx].copy(),
            std=None if self.std is None else self.std[idx].copy(),
            reference=take(self.reference),
            distortion=take(self.distortion),
            split=take(self.split),
            higher_is_better=self.higher_is_better,
            score_range=self.score_range,
        )

    def to_frame_rows(self) -> list[dict[str, str | float]]:
        """One dict per image, for ``csv.DictWriter`` (or ``pandas.DataFrame``).

        Keys: ``image`` (the path relative to ``root``, POSIX style, or the full path when it is
        not under root), ``score``, then ``std``, ``reference``, ``distortion`` and ``split`` when the
        table has them. Every row has the same keys, so ``load_csv`` reads the file back."""
        rows: list[dict[str, str | float]] = []
        for i, path in enumerate(self.paths):
            try:
                image = path.relative_to(self.root).as_posix()
            except ValueError:
                image = str(path)
            row: dict[str, str | float] = {"image": image, "score": float(self.scores[i])}
            if self.std is not None:
                row["std"] = float(self.std[i])
            if self.reference is not None:
                row["reference"] = self.reference[i]
            if self.distortion is not None:
                row["distortion"] = self.distortion[i]
            if self.split is not None:
                row["split"] = self.split[i]
            rows.append(row)
        return rows
