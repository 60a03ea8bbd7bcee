"""IQA databases: one small loader per database, reading its label files as published.

Each loader takes the local folder a user names (nothing is ever downloaded), reads the labels,
checks that every listed image file exists (no image is decoded) and returns a ``LabelTable``
with paths, scores, their direction and range, and, where the database has them, the std of the
ratings, the reference (content) id and distortion type of synthetic sets, and the official split.

    >>> from reiqa import datasets
    >>> table = datasets.load("kadid10k", "/data/kadid10k")   # doctest: +SKIP
    >>> datasets.get("kadid10k").higher_is_better
    True

``load_csv`` reads a user's own CSV of image names and scores.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from reiqa.datasets import (
    agiqa3k,
    biq2021,
    clive,
    csiq,
    flive,
    kadid10k,
    koniq10k,
    live,
    pipal,
    spaq,
    tid2013,
)
from reiqa.datasets.base import DatasetSpec, LabelTable
from reiqa.datasets.csv_table import load_csv
from reiqa.errors import DatasetError, UnknownNameError

__all__ = ["DATASETS", "DatasetError", "DatasetSpec", "LabelTable", "get", "load", "load_csv", "names"]

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        live.SPEC,
        csiq.SPEC,
        tid2013.SPEC,
        kadid10k.SPEC,
        koniq10k.SPEC,
        clive.SPEC,
        flive.SPEC,
        spaq.SPEC,
        pipal.SPEC,
        agiqa3k.SPEC,
        biq2021.SPEC,
    )
}


def names() -> list[str]:
    """The registered dataset names, in table order (synthetic, then authentic, then AI-generated)."""
    return list(DATASETS)


def get(name: str) -> DatasetSpec:
    """The spec of dataset ``name``. Case, ``-``, ``_`` and spaces are ignored (``"KADID-10k"`` works).

    Raises:
        UnknownNameError: no such dataset; the message lists close matches and all names.
    """
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in DATASETS:
        near = difflib.get_close_matches(key, list(DATASETS), n=3)
        raise UnknownNameError(f"unknown dataset {name!r}; close: {near}; all: {names()}")
    return DATASETS[key]


def load(name: str, root: Path | str) -> LabelTable:
    """Load dataset ``name`` from the folder ``root``; see each module for the layout it reads.

    Raises:
        UnknownNameError: no such dataset.
        DatasetError: the folder does not hold the database as published, or images are missing.
    """
    return get(name).load(Path(root))
