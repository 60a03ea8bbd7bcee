"""Batch jobs over many files: scoring into a CSV / JSON Lines / JSON file (resumable), and feature
extraction into a feature file.

Rows are appended after every batch (flushed and fsynced), so a crash loses at most the batch in
flight; running the same command again scores only the files that are not in the output yet, and
retries those that failed (``reiqa.outputs`` holds the lock, the provenance check and the
repairs). Unreadable files get a row with an empty score and the error, and the job goes on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reiqa.errors import ConfigError, OutputError
from reiqa.features import FeatureModel, FeatureOptions, FeatureTable, extract
from reiqa.inference import ReIQA, load
from reiqa.inputs import expand_inputs, list_training_images
from reiqa.io import DEFAULT_MAX_PIXELS
from reiqa.outputs import Provenance, Repair, ScoreOutput, ScoreRecord, output_format, refuse_to_replace
from reiqa.runtime import pick_device


@dataclass
class JobSummary:
    total: int  # files named by the inputs
    scored: int  # scored in this run
    failed: int  # unreadable in this run
    skipped: int  # already in the output from an earlier run
    records: list[ScoreRecord]
    repair: Repair = field(default_factory=Repair)  # what resuming the output dropped or retried
    failed_in_output: int = 0  # rows without a score in the final output (this run's or earlier)


def scoring_provenance(model: ReIQA) -> Provenance:
    """What the scores of ``model`` depend on: an id over the encoders' weights, the feature
    options and the regressor, with the model's name and options for people."""
    return Provenance(model.model_id, model.name, model.options.to_dict())


def score_to_file(
    model: ReIQA,
    paths: Sequence[Path],
    output: Path | None,
    *,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
    scorer: Callable[[Sequence[Path]], Iterable[ScoreRecord]] | None = None,
) -> JobSummary:
    """Score ``paths``; with ``output``, resume it: files already scored there (by resolved
    path) are skipped, failed ones are retried, rows are appended after every batch (see
    :class:`reiqa.outputs.ScoreOutput` for the lock, the provenance check and the repairs).
    ``scorer`` (paths -> records, in any order) replaces ``model.score_files``: ``reiqa score
    --ray`` scores on a cluster this way."""
    if scorer is None:

        def scorer(todo: Sequence[Path]) -> Iterable[ScoreRecord]:
            return model.score_files(
                todo, batch_size=batch_size, workers=workers, progress=progress, max_pixels=max_pixels
            )

    if output is None:
        order = {str(p): i for i, p in enumerate(paths)}
        records = sorted(scorer(paths), key=lambda r: order.get(r.path, len(order)))
        return JobSummary(
            len(paths),
            sum(r.score is not None for r in records),
            sum(r.score is None for r in records),
            0,
            records,
        )
    with ScoreOutput(output, scoring_provenance(model), overwrite=overwrite) as out:
        todo = out.todo(paths)
        new: list[ScoreRecord] = []
        batch: list[ScoreRecord] = []
        for record in scorer(todo):
            new.append(record)
            batch.append(record)
            if len(batch) >= batch_size:
                out.write(batch)
                batch = []
        if batch:
            out.write(batch)
    return JobSummary(
        total=len(paths),
        scored=sum(r.score is not None for r in new),
        failed=sum(r.score is None for r in new),
        skipped=len(paths) - len(todo),
        records=new,
        repair=out.repair,
        failed_in_output=out.failures(),
    )


@dataclass
class ScoringRun:
    """What ``reiqa score`` did: the job summary, the inputs that named no image file or could not
    be used (each with its reason), and the model's name and direction for the closing line."""

    summary: JobSummary
    empty_inputs: list[str]
    model_name: str
    higher_is_better: bool
    bad_inputs: list[str] = field(default_factory=list)
    output: Path | None = None

    @property
    def failed(self) -> bool:
        """Whether an input named nothing or failed, or a file has no score (in the output: this
        run's or an earlier one's)."""
        files = self.summary.failed_in_output if self.output is not None else self.summary.failed
        return bool(files or self.empty_inputs or self.bad_inputs)


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
    overwrite: bool = False,
    backend: str = "auto",
    ray: str | None = None,
    ray_actors: int = 2,
    on_empty: Callable[[str], object] | None = None,
    on_bad: Callable[[str], object] | None = None,
) -> ScoringRun:
    """``reiqa score``: expand the inputs (files, folders, globs, CSV lists), load the model
    ('default' or a folder) on ``device``, and score into ``output`` (resumable) or memory.
    ``max_side`` overrides the model's size cap (0: full size); the output's provenance, and the
    Ray actors with ``ray``, get the options the model really scores with. ``progress`` None
    shows a bar for runs over 20 images. Before the model is loaded, ``on_empty`` is told of each input that
    names no image file and ``on_bad`` of each that does not exist or cannot be read (the
    message starts with the input); the other inputs are scored."""
    if output is not None:
        output_format(output)  # a bad suffix fails before the model is loaded
    empty: list[str] = []
    bad: list[str] = []
    paths = expand_inputs(inputs, recursive=recursive, empty=empty, bad=bad)
    for item in empty if on_empty is not None else ():
        on_empty(item)
    for message in bad if on_bad is not None else ():
        on_bad(message)
    net = load(model, backend=backend, device=device, images=len(paths))
    if max_side is not None:
        net = net.with_options(max_side=max_side or None)
    scorer = None
    if ray is not None:
        from reiqa.cluster import score_rows_on_ray

        def scorer(todo: Sequence[Path]) -> Iterable[ScoreRecord]:
            return score_rows_on_ray(
                todo,
                net,
                model=str(model),
                address=ray,
                num_actors=ray_actors,
                batch_size=batch_size,
                device=device,
                max_pixels=max_pixels,
            )

    summary = score_to_file(
        net,
        paths,
        output,
        batch_size=batch_size,
        workers=workers,
        progress=len(paths) > 20 if progress is None else progress,
        max_pixels=max_pixels,
        overwrite=overwrite,
        scorer=scorer,
    )
    return ScoringRun(summary, empty, net.name, net.higher_is_better, bad, output)


def extract_to_file(
    inputs: Sequence[str | Path],
    out: Path,
    *,
    quality: Path | None = None,
    content: Path | None = None,
    model: Path | None = None,
    device: str = "auto",
    options: FeatureOptions | None = None,
    overwrite: bool = False,
    **extract_options: Any,
) -> FeatureTable:
    """``reiqa features``: the features of the images the inputs name (folders searched
    recursively) with encoder files (``quality`` and/or ``content``) or a model folder's encoders,
    written to ``out`` (a ``.safetensors`` file, replaced only with ``overwrite``);
    ``extract_options`` go to :func:`reiqa.features.extract`."""
    if (quality is None and content is None) == (model is None):
        raise ConfigError("give a quality and/or a content encoder file, or a model folder")
    if Path(out).suffix.lower() != ".safetensors":
        raise OutputError(
            f"{out}: a feature file is written as safetensors; give a name ending in .safetensors"
        )
    refuse_to_replace(Path(out), overwrite=overwrite)
    options = options or FeatureOptions()
    if model is not None:
        net = load(model).features.with_pooling(options.pooling)
    else:
        net = FeatureModel.from_files(quality, content, compat=options.compat, pooling=options.pooling)
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
