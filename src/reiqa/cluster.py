"""Score an image dataset on a Ray cluster (Ray Data), with the model held by a pool of actors.

Needs the ``ray`` extra (``pip install 'reiqa[ray]'``). In Python::

    import ray
    from reiqa.cluster import score_dataset

    ds = ray.data.from_items([{"path": p} for p in paths])      # or rows with "bytes" + "path"
    score_dataset(ds, num_actors=8).write_parquet("s3://bucket/scores/")  # path, score, error

Each actor loads the model once and scores batches of rows through the one scoring pipeline
(``ReIQA.prepare``, ``ReIQA.score_batch``): a row with ``bytes`` is decoded from memory
(``path`` is then only its name), else the file at ``path`` is read where the actor runs (a
shared file system or object store mount). A file that cannot be read gets ``score`` NaN and its
reason in ``error``; the others are scored. An actor that dies is restarted by Ray and its
batches are run again, so every row comes out exactly once.

``score_rows_on_ray`` is ``reiqa score --ray``: the driver lists the files, skips those already in
the output, hands the actors its model's engine, options and id, and writes the records through
``reiqa.outputs.ScoreOutput`` (resumable, locked, with its provenance), as the single-process
command does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reiqa.errors import ModelError, ReiqaError
from reiqa.io import DEFAULT_MAX_PIXELS
from reiqa.outputs import ScoreRecord

if TYPE_CHECKING:
    from reiqa.inference import ReIQA

#: Ray Data's name for the rows' columns
PATH, BYTES, SCORE, ERROR = "path", "bytes", "score", "error"


def _require_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ReiqaError("scoring on Ray needs Ray Data: pip install 'reiqa[ray]'") from exc
    return ray


class BatchScorer:
    """The callable class Ray Data runs in each actor: loads the model once, scores batches.

    Args:
        model: 'default' or a model folder (readable where the actor runs).
        backend: a name of ``reiqa.engines.ENGINES``.
        device: 'cpu', 'cuda' (an actor with ``num_gpus``) or 'auto'.
        options: feature options that replace the card's (``ReIQA.with_options``: ``max_side``,
            ``min_side``).
        model_id: the id the actor's model must have (the driver's model's): an actor that would
            score otherwise (another folder behind the same path, other options) fails at once.
        max_pixels: refuse images with more pixels.
    """

    def __init__(
        self,
        model: str = "default",
        backend: str = "torch",
        device: str = "auto",
        options: dict[str, int | None] | None = None,
        model_id: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        from reiqa.inference import load

        self.model = load(model, backend=backend, device=device).with_options(**(options or {}))
        if model_id is not None and self.model.model_id != model_id:
            raise ModelError(
                f"{model}: the Ray actor's model has id {self.model.model_id}, the driver's {model_id} "
                "(another model folder under that path on this node, or other options)"
            )
        self.max_pixels = max_pixels

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [str(p) for p in batch[PATH]]
        blobs = batch.get(BYTES)
        items = [
            self.model.prepare(
                name if blobs is None or blobs[i] is None else bytes(blobs[i]),
                name=name,
                max_pixels=self.max_pixels,
            )
            for i, name in enumerate(names)
        ]
        records = self.model.score_batch(names, items)
        return {
            PATH: np.array(names, dtype=object),
            SCORE: np.array([np.nan if r.score is None else r.score for r in records]),
            ERROR: np.array([r.error for r in records], dtype=object),
        }


def score_dataset(
    dataset: Any,
    *,
    model: str = "default",
    backend: str = "torch",
    device: str = "auto",
    options: dict[str, int | None] | None = None,
    model_id: str | None = None,
    num_actors: int = 2,
    batch_size: int = 8,
    num_cpus: float = 1,
    num_gpus: float = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Any:
    """``dataset`` (a Ray Dataset with a ``path`` column, and optionally ``bytes``) scored by a
    pool of ``num_actors`` actors (:class:`BatchScorer`, which takes ``model`` to ``max_pixels``),
    each with ``num_cpus`` and ``num_gpus``: a Dataset of rows ``path``, ``score`` (NaN when the
    file failed) and ``error`` (None or the reason). Lazy, as Ray Data is: write it
    (``write_parquet``, ``write_csv``) or iterate it to run it."""
    ray = _require_ray()
    return dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs={
            "model": model,
            "backend": backend,
            "device": device,
            "options": options,
            "model_id": model_id,
            "max_pixels": max_pixels,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        # Ray Data's actor pools restart an actor that dies and run its batches again
        # (max_restarts=-1, max_task_retries=-1 by default); tests/test_cluster.py kills one
    )


def score_rows_on_ray(
    paths: Sequence[str | Path],
    like: ReIQA,
    *,
    model: str = "default",
    address: str | None = None,
    device: str = "auto",
    num_actors: int = 2,
    batch_size: int = 8,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    init_kwargs: dict[str, Any] | None = None,
) -> Iterator[ScoreRecord]:
    """A ScoreRecord for each file, in no fixed order, from a Ray cluster whose actors load
    ``model`` ('default' or a folder they can read) as ``like`` is (its engine and feature
    options; checked by its model id). ``address``: 'auto' or 'ray://host:10001' for a running
    cluster, 'local' to start one on this machine, None for Ray's default: $RAY_ADDRESS, else a
    new local instance."""
    ray = _require_ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, **(init_kwargs or {}))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    dataset = ray.data.from_items(
        [{PATH: str(p)} for p in paths], override_num_blocks=max(1, len(paths) // 64)
    )
    scored = score_dataset(
        dataset,
        model=model,
        backend=like.backend,
        device=device,
        options={"max_side": like.options.max_side, "min_side": like.options.min_side},
        model_id=like.model_id,
        num_actors=num_actors,
        batch_size=batch_size,
        max_pixels=max_pixels,
    )
    for row in scored.iter_rows():
        score = float(row[SCORE])
        yield ScoreRecord(str(row[PATH]), None if math.isnan(score) else score, row[ERROR])
