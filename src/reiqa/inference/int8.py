"""Reading the int8 encoders that ``reiqa quantize`` (``reiqa.inference.quantize``) wrote: a
folder (in the cache, ``int8_dir``, unless written elsewhere) of OpenVINO IR graphs and
``int8.json`` (weights id, calibration, hold-out figures, the bar, the files' digests). A set is
read only whole and of the model's own weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reiqa.digest import file_sha256
from reiqa.engines import EngineError, cache_dir

if TYPE_CHECKING:
    from reiqa.features import FeatureModel

__all__ = ["FORMAT", "Int8Set", "int8_dir", "read_int8"]

FORMAT = "reiqa-int8-1"


@dataclass(frozen=True)
class Int8Set:
    """A folder of int8 encoders, checked: its graphs and its report."""

    folder: Path
    graphs: dict[str, Path]
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report.get("passed"))

    @property
    def precision(self) -> str:
        """The engine precision of these encoders: part of the model id of their scores."""
        return f"int8:{self.report['id']}"


def int8_dir(features: FeatureModel) -> Path:
    """Where ``reiqa quantize`` keeps the int8 encoders of these weights."""
    return cache_dir() / "int8" / features.model_id(max_side=None, min_side=None)


def read_int8(features: FeatureModel, folder: Path | None = None) -> Int8Set:
    """The int8 encoders of ``features`` in ``folder`` (default: the cache), checked whole and of
    these weights; EngineError (saying how to make them) otherwise."""
    folder = Path(folder) if folder is not None else int8_dir(features)
    meta = folder / "int8.json"
    if not meta.is_file():
        raise EngineError(
            f"{folder}: no int8 encoders for this model; make them with: reiqa quantize PHOTOS "
            "(a few hundred of your photos; up to an hour on 2 CPU cores)"
        )
    try:
        report = json.loads(meta.read_text())
        files = report["files"]
        weights_id = report["weights_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{meta}: unreadable ({exc})") from exc
    if report.get("format") != FORMAT:
        raise EngineError(f"{meta}: format {report.get('format')!r}, expected {FORMAT!r}")
    expected = features.model_id(max_side=None, min_side=None)
    if weights_id != expected:
        raise EngineError(
            f"{folder}: int8 encoders of other weights (id {weights_id}, this model's is {expected}); "
            "quantize again with reiqa quantize"
        )
    graphs = {}
    for role in features.encoders():
        for suffix in (".xml", ".bin"):
            path = folder / f"{role}{suffix}"
            if not path.is_file() or file_sha256(path) != files.get(path.name):
                raise EngineError(f"{path}: missing or not the file int8.json describes; quantize again")
        graphs[role] = folder / f"{role}.xml"
    return Int8Set(folder, graphs, report)
