"""The ``reiqa`` command line. Each command parses its arguments, calls one library function and
formats the result; a ``ReiqaError`` or ``OSError`` becomes one line ``error: <message>`` and exit
status 1 (see :func:`main`). Nothing here imports torch at module level, so ``--help`` and
argument errors are instant."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reiqa import engines
from reiqa.errors import ReiqaError, printable

# reiqa.io.DEFAULT_MAX_PIXELS, written out so that --help and argument errors never import torch
# (reiqa.io does); tests/test_cli.py checks that the two agree.
DEFAULT_MAX_PIXELS = 1 << 28

if TYPE_CHECKING:
    from reiqa.cull import CullRun
    from reiqa.diagnose.fit import FitResult
    from reiqa.diagnose.run import DiagnoseRun
    from reiqa.features import FeatureTable
    from reiqa.inference.quantize import QuantizationReport
    from reiqa.jobs import ScoringRun
    from reiqa.train.finetune import FinetuneResult

#: the --max-pixels option of every command that decodes images
MaxPixels = Annotated[
    int, typer.Option(min=1, help="Refuse images with more pixels (checked before decoding).")
]

#: reiqa.models.backbones.POOLINGS' keys, written out so that --help never imports torch
#: (tests/test_cli.py checks that the two agree)
POOLING_HELP = (
    "How each encoder's maps become its vector: gap (Re-IQA's global average) or gap+stages "
    "(with the averages of the last three stages' ends)."
)

#: reiqa.cull.DEFAULT_SIMILARITY, written out so that --help never imports torch (tests/test_cull.py
#: checks that the two agree), with what benchmarks/cull_threshold.py measured at it
DEFAULT_CULL_SIMILARITY = 0.79
CULL_SIMILARITY_HELP = (
    "Cosine similarity of content embeddings at or above which two photos are one scene. The default "
    "0.79, on bursts of photos it was not chosen on: 97 % of the pairs put in one group are one scene, "
    "66 % of the pairs of one scene are put in one group (re-framed, re-exposed, noisy, JPEG: mostly; "
    "blurred: a third)."
)

#: the --backend option of score and serve, from the engine table (which imports no torch)
Backend = Annotated[str, typer.Option(help=engines.help_text())]

app = typer.Typer(
    name="reiqa",
    help="No-reference image quality assessment with Re-IQA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def distort(
    image: Annotated[Path | None, typer.Argument(help="Image file to distort.")] = None,
    type_: Annotated[str | None, typer.Option("--type", "-t", help="Distortion name or id 1..26.")] = None,
    level: Annotated[int, typer.Option("--level", "-l", min=0, max=4, help="Level 0..4.")] = 2,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the result.")] = None,
    sheet: Annotated[bool, typer.Option("--sheet", help="Write a 26 x 5 contact sheet instead.")] = False,
    tile: Annotated[int, typer.Option(min=16, help="Sheet tile side in px (centre crop at 1:1).")] = 160,
    list_: Annotated[bool, typer.Option("--list", help="List the distortion types and exit.")] = False,
    compat: Annotated[
        bool, typer.Option("--compat", help="Follow the official code, defects included.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for the random types.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Apply one synthetic distortion to an image, or render every type and level as a sheet."""
    from reiqa.sheet import catalogue_table, distort_file

    if list_:
        typer.echo(catalogue_table())
        return
    if image is None or output is None:
        raise typer.BadParameter("give an IMAGE and --output (or use --list)")
    if sheet == (type_ is not None):
        raise typer.BadParameter("give exactly one of --type NAME|ID or --sheet")
    from reiqa.outputs import refuse_to_replace

    refuse_to_replace(output, overwrite=overwrite)
    distort_file(
        image,
        output,
        type_=type_,
        level=level,
        sheet=sheet,
        tile=tile,
        compat=compat,
        seed=seed,
        device=device,
        max_pixels=max_pixels,
    )
    typer.echo(f"wrote {output}")


@app.command()
def pretrain(
    data: Annotated[list[Path], typer.Option("--data", help="Image folder, CSV list or file (repeatable).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, logs, final encoder.")],
    encoder: Annotated[str, typer.Option(help="quality or content.")] = "quality",
    preset: Annotated[str | None, typer.Option(help="paper, cpu-small, content, content-cpu-small.")] = None,
    config: Annotated[Path | None, typer.Option(help="A JSON config (see configs/).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. optim.epochs=10.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Pre-train an encoder with MoCo-v2 (one process, or many under torchrun)."""
    from reiqa.runtime import tune_allocator
    from reiqa.train.config import load_config
    from reiqa.train.loop import run

    if encoder not in ("quality", "content"):
        raise typer.BadParameter(f"--encoder must be quality or content, got {encoder!r}")
    cfg = load_config(encoder=encoder, preset_name=preset, path=config, overrides=set_ or ())
    tune_allocator()
    result = run(cfg, data, out, resume=resume, device=device, progress=progress)
    typer.echo(f"stopped at step {result.step}; loss {result.final_loss}; outputs in {result.out_dir}")


@app.command()
def finetune(
    db: Annotated[
        list[str],
        typer.Option(
            "--db",
            help="NAME=ROOT: a database of reiqa.datasets (clive, biq2021, koniq10k, ...) and its folder, "
            "or csv=FILE (repeatable; the first one's scale is the output's).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder; it becomes the model folder.")],
    model: Annotated[str, typer.Option(help="'default' or the model folder to start from.")] = "default",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=2, help="Crops per step, of one database.")] = 8,
    crop: Annotated[int, typer.Option(min=32, help="Training crop side in pixels.")] = 320,
    val_fraction: Annotated[float, typer.Option(help="Training rows held out for validation.")] = 0.2,
    val: Annotated[int | None, typer.Option(min=2, help="Or: this many rows per database.")] = None,
    freeze: Annotated[
        list[str] | None, typer.Option(help="quality or content: keep that encoder as it is.")
    ] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the encoders (AdamW).")] = 1e-5,
    head_lr: Annotated[float, typer.Option(help="Peak learning rate of the linear head.")] = 1e-4,
    degrade_weight: Annotated[float, typer.Option(min=0, help="Degraded-copy hinge (0: off).")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many steps.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    amp: Annotated[str, typer.Option(help="none, bf16 or fp16 (autocast).")] = "none",
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 2,
    seed: Annotated[int, typer.Option()] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any config field, e.g. mse_weight=0.5.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune a model's encoders and regressor on opinion scores (ranking + z-score losses,
    one database per batch, degraded copies ranked below); --out becomes a model folder."""
    from reiqa.train.finetune import config_from_options, run

    cfg = config_from_options(
        db,
        overrides=set_ or (),
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        val_fraction=val_fraction,
        val=val,
        freeze=freeze,
        lr_encoder=lr,
        lr_head=head_lr,
        degrade_weight=degrade_weight,
        max_steps=max_steps,
        time_limit=time_limit,
        amp=amp,
        workers=workers,
        seed=seed,
    )
    _print_finetune(run(cfg, out, resume=resume, device=device, progress=progress))


def _print_finetune(result: FinetuneResult) -> None:
    """Skipped files on stderr; where the run stopped and the model folder it wrote."""
    for name in result.skipped:
        _skipped(name)
    _echo(f"stopped at step {result.step} ({result.stopped}); history in {result.out_dir / 'history.json'}")
    if result.best is None:
        _echo("no validation yet: no model folder written (resume to continue)", err=True)
        return
    figures = ", ".join(
        f"{k} {v['srcc']:.3f}" for k, v in result.best["databases"].items() if v["srcc"] is not None
    )
    step = result.best["step"]
    _echo(f"model folder {result.out_dir}: the step-{step} checkpoint (validation SRCC {figures})")
    if result.skipped:
        _echo(f"{len(result.skipped)} unreadable training image(s) skipped", err=True)


@app.command()
def features(
    inputs: Annotated[list[Path], typer.Argument(help="Image files, folders (recursive) or a CSV list.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Feature file to write (.safetensors).")],
    quality: Annotated[
        Path | None, typer.Option(help="Quality encoder (encoder.json from pretrain).")
    ] = None,
    content: Annotated[Path | None, typer.Option(help="Content encoder (encoder.json).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Feature cache folder (resumable).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 0,
    max_side: Annotated[
        int | None, typer.Option(help="Downscale images whose longer side is larger.")
    ] = None,
    min_side: Annotated[
        int | None, typer.Option(help="Downscale so the shorter side is at most this.")
    ] = None,
    compat: Annotated[bool, typer.Option(help="The official demos' half scale (8-bit).")] = False,
    pooling: Annotated[str, typer.Option(help=POOLING_HELP)] = "gap",
    model: Annotated[Path | None, typer.Option(help="Take the encoders of a model folder instead.")] = None,
    amp: Annotated[str, typer.Option(help="none, bf16 or fp16 (autocast).")] = "none",
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Extract Re-IQA features (quality and/or content encoder, full and half scale)."""
    from reiqa.features import FeatureOptions
    from reiqa.jobs import extract_to_file
    from reiqa.runtime import tuned_allocator

    if (quality is None and content is None) == (model is None):
        raise typer.BadParameter("give --quality and/or --content, or --model")
    with tuned_allocator():
        table = extract_to_file(
            inputs,
            out,
            quality=quality,
            content=content,
            model=model,
            device=device,
            options=FeatureOptions(max_side=max_side, min_side=min_side, compat=compat, pooling=pooling),
            overwrite=overwrite,
            cache=cache,
            batch_size=batch_size,
            workers=workers,
            progress=True,
            amp=amp,
            max_pixels=max_pixels,
        )
    _print_extraction(table, out)


def _print_extraction(table: FeatureTable, out: Path) -> None:
    """Skipped files on stderr, a summary; exit status 3 when any file was skipped."""
    for _, cause in table.failures:
        _skipped(cause)
    skipped = f", {len(table.failures)} skipped" if table.failures else ""
    typer.echo(f"wrote {out}: {len(table.paths)} images x {table.features.shape[1]} features{skipped}")
    if table.failures:
        raise typer.Exit(3)


@app.command()
def fit(
    features_file: Annotated[Path, typer.Option("--features", help="From `reiqa features`.")],
    scores: Annotated[Path, typer.Option(help="CSV with an image column and a score column.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Regressor folder to write.")],
    method: Annotated[str, typer.Option(help="ridge or elasticnet.")] = "ridge",
    image_column: Annotated[str | None, typer.Option(help="Default: guessed (image, path, ...).")] = None,
    score_column: Annotated[str | None, typer.Option(help="Default: guessed (mos, score, ...).")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder the CSV's image names are relative to.")] = None,
    lower_is_better: Annotated[bool, typer.Option(help="Scores are DMOS-like.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Fit the regressor on your own opinion scores (strength by 5-fold cross-validation)."""
    from reiqa.evaluate import fit_regressor
    from reiqa.outputs import refuse_to_replace

    refuse_to_replace(out, overwrite=overwrite, files=("regressor.json", "regressor.safetensors"))

    reg = fit_regressor(
        features_file,
        scores,
        method=method,
        image_column=image_column,
        score_column=score_column,
        images=images,
        lower_is_better=lower_is_better,
    )
    reg.save(out)
    chosen = f"alpha {reg.alpha_:g} chosen by {reg.selection_.by} (SRCC {reg.selection_.srcc:.3f})"
    typer.echo(f"fitted on {reg.info.n} images; {chosen}; wrote {out}")
    if reg.selection_.at_grid_edge:
        typer.echo(f"warning: alpha {reg.alpha_:g} is at the end of the search grid", err=True)


@app.command()
def evaluate(
    features_file: Annotated[Path, typer.Option("--features", help="From `reiqa features`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")],
    dataset: Annotated[str | None, typer.Option(help="Database name (see reiqa.datasets.names()).")] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="The database folder; with --scores, the folder its image names are relative to."),
    ] = None,
    scores: Annotated[Path | None, typer.Option(help="Or: a CSV of your own scores.")] = None,
    splits: Annotated[int, typer.Option(min=1, help="Random splits (70/10/20).")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    ablations: Annotated[bool, typer.Option(help="Also quality-only and content-only.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Run the evaluation protocol and write a Markdown/JSON report with plots."""
    from reiqa import datasets
    from reiqa.datasets.csv_table import load_csv
    from reiqa.evaluate import evaluate_table
    from reiqa.features import FeatureTable

    if (dataset is None) == (scores is None):
        raise typer.BadParameter("give --dataset NAME --root DIR, or --scores CSV")
    if dataset is not None and root is None:
        raise typer.BadParameter("--dataset needs --root")
    from reiqa.outputs import refuse_to_replace

    refuse_to_replace(out, overwrite=overwrite, files=("report.md", "report.json", "splits.json"))
    labels = datasets.load(dataset, root) if dataset else load_csv(scores, root=root)
    report = evaluate_table(
        FeatureTable.load(features_file), labels, out, n_splits=splits, seed=seed, ablations=ablations
    )
    typer.echo(report.read_text(encoding="utf-8"))


@app.command()
def score(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns or a CSV list.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="scores.csv, .json or .jsonl (resumed if it exists)."),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Search folders recursively.")] = False,
    model: Annotated[str, typer.Option(help="'default' or a model folder.")] = "default",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 0,
    max_side: Annotated[
        int | None,
        typer.Option(
            min=0, help="Downscale images whose longer side is larger (0: full size). Default: the model's."
        ),
    ] = None,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[bool, typer.Option(help="Start --output over instead of resuming it.")] = False,
    backend: Backend = "auto",
    ray: Annotated[
        str | None,
        typer.Option(
            help="Score on a Ray cluster: its address (auto, ray://HOST:10001) or 'local' (a local "
            "instance). Needs reiqa[ray]."
        ),
    ] = None,
    ray_actors: Annotated[int, typer.Option(min=1, help="Actors holding the model (with --ray).")] = 2,
) -> None:
    """Score images with a Re-IQA model; bad files and inputs are reported and skipped (exit
    status 3 when any file or input failed)."""
    from reiqa.jobs import score_inputs
    from reiqa.runtime import tuned_allocator

    with tuned_allocator():  # 2x faster on CPU: freed activations are reused, given back at the end
        run = score_inputs(
            inputs,
            output,
            recursive=recursive,
            model=model,
            device=device,
            batch_size=batch_size,
            workers=workers,
            max_side=max_side,
            max_pixels=max_pixels,
            overwrite=overwrite,
            backend=backend,
            ray=ray,
            ray_actors=ray_actors,
            on_empty=lambda item: _skipped(f"{item}: no image files found there"),
            on_bad=_skipped,
        )
    _print_scores(run, output)
    _allow_quick_exit()  # the output file is written and closed
    if run.failed:
        raise typer.Exit(3)


def _echo(text: str, *, err: bool = False) -> None:
    """typer.echo for text that may hold file names that are not UTF-8 (shown as \\xNN)."""
    typer.echo(text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), err=err)


def _skipped(message: object) -> None:
    """A "skipped: ..." line on stderr, escaped (:func:`reiqa.errors.printable`) so that a file
    name holding a newline or a terminal escape cannot forge or hide a line."""
    _echo(f"skipped: {printable(message)}", err=True)


def _print_scores(run: ScoringRun, output: Path | None) -> None:
    """Skipped files on stderr; the scores on stdout (without --output); a summary."""
    records = run.summary.records
    for r in records:
        if r.error:
            _skipped(r.error)
    s = run.summary
    if output is not None:
        fixed = s.repair
        parts = [
            f"{n} {what}"
            for n, what in (
                (fixed.torn, "torn or unreadable row(s) dropped"),
                (fixed.repeated, "repeated row(s) dropped"),
                (fixed.retried, "failed file(s) retried"),
            )
            if n
        ]
        if parts:
            _echo(f"resumed {output}: {', '.join(parts)}", err=True)
        _echo(f"{s.scored} scored, {s.failed} failed, {s.skipped} already in {output}", err=True)
        if s.failed_in_output > s.failed:
            _echo(f"{output} holds {s.failed_in_output} failed file(s) in all", err=True)
        return
    shown = [printable(r.path) for r in records]
    width = max(map(len, shown), default=4)
    for r, path in zip(records, shown, strict=True):
        _echo(f"{path:<{width}}  {'-' if r.score is None else f'{r.score:.3f}'}")
    direction = "higher is better" if run.higher_is_better else "lower is better"
    _echo(f"{s.scored} scored, {s.failed} failed ({run.model_name}; {direction})", err=True)


@app.command()
def cull(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns or a CSV list.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="cull.csv, .json or .jsonl (features cached beside it: resumable)."
        ),
    ] = None,
    similarity: Annotated[float, typer.Option(min=-1.0, max=1.0, help=CULL_SIMILARITY_HELP)] = (
        DEFAULT_CULL_SIMILARITY
    ),
    keep: Annotated[int, typer.Option(min=1, help="Keep the best K of each group.")] = 1,
    link_keepers: Annotated[
        Path | None,
        typer.Option(
            help="Link (hard, else symbolic, else copy) the keepers into this folder; never replaces."
        ),
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Feature cache folder (default: beside --output).")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Search folders recursively.")] = False,
    model: Annotated[
        str, typer.Option(help="'default' or a model folder (with a content encoder).")
    ] = "default",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[bool, typer.Option(help="Replace an output that reiqa cull did not write.")] = False,
) -> None:
    """Group near-duplicate photos (re-framed, re-exposed or spoiled shots of one scene) by the
    content encoder's embedding, rank each group by quality score and mark the best (--keep K);
    never deletes or moves a file. Exit status 3 when a file or input failed."""
    from reiqa.cull import cull_inputs
    from reiqa.runtime import tuned_allocator

    with tuned_allocator():
        run = cull_inputs(
            inputs,
            output,
            similarity=similarity,
            keep=keep,
            link_to=link_keepers,
            cache=cache,
            recursive=recursive,
            model=model,
            device=device,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            overwrite=overwrite,
            on_problem=_skipped,
        )
    _print_cull(run)
    if run.failed:
        raise typer.Exit(3)


def _print_cull(run: CullRun) -> None:
    """Failed files on stderr; the rows on stdout (without --output); a summary on stderr."""
    culled = run.culled
    for r in culled.records:
        if r.error:
            _skipped(r.error)
    if run.output is None:
        for r in culled.records:
            if r.group is not None:
                _echo(f"{r.group:>5}  {'keep' if r.keep else '    '}  {r.score:8.3f}  {printable(r.path)}")
    files = len(culled.records) - culled.failed
    cached = f" ({culled.cached} from {run.cache})" if culled.cached else ""
    _echo(
        f"{files} files{cached}: {culled.groups} groups, {culled.kept} kept, {culled.failed} failed", err=True
    )
    if run.output is not None:
        _echo(f"wrote {run.output}", err=True)
    if run.links:
        from collections import Counter

        hows = ", ".join(f"{n} {how}" for how, n in Counter(link.how for link in run.links).items())
        _echo(f"{len(run.links)} keepers in {run.links[0].target.parent}: {hows}", err=True)


@app.command()
def diagnose(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns or a CSV list.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="diagnosis.csv, .json or .jsonl (written whole at the end; a stopped run resumes).",
        ),
    ] = None,
    map_dir: Annotated[
        Path | None,
        typer.Option("--map", help="Folder for a heat map per photo (PNG): the score of overlapping crops."),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Search folders recursively.")] = False,
    model: Annotated[
        str, typer.Option(help="'default' or a model folder with a diagnosis head (reiqa fit-diagnosis).")
    ] = "default",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output or heat map.")] = False,
) -> None:
    """Say what is most likely wrong with each photo (none, blur, noise, compression, exposure,
    color, contrast or artifacts), how badly (severity 0-1), and its score; bad files are
    reported and skipped (exit status 3 when any file or input failed)."""
    from reiqa.diagnose.run import diagnose_inputs
    from reiqa.runtime import tuned_allocator

    with tuned_allocator():
        run = diagnose_inputs(
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
            on_empty=lambda item: _skipped(f"{item}: no image files found there"),
            on_bad=_skipped,
        )
    _print_diagnoses(run)
    if run.failed:
        raise typer.Exit(3)


def _print_diagnoses(run: DiagnoseRun) -> None:
    """Failed files on stderr; the diagnoses on stdout (without --output); a summary."""
    for r in run.records:
        if r.error:
            _skipped(r.error)
    if run.output is None:
        width = max((len(printable(r.path)) for r in run.records), default=4)
        _echo(f"{'path':<{width}}  {'score':>7}  {'issue':<11}  severity")
        for r in run.records:
            if r.score is not None:
                _echo(f"{printable(r.path):<{width}}  {r.score:>7.2f}  {r.issue:<11}  {r.severity:.2f}")
    if run.resumed:
        _echo(f"resumed: {run.resumed} file(s) diagnosed by a stopped run were kept", err=True)
    failed = sum(r.error is not None for r in run.records)
    done = f"{len(run.records) - failed} diagnosed" + (f" into {run.output}" if run.output else "")
    maps = f"; {len(run.maps)} heat map(s) written" if run.maps else ""
    direction = "higher is better" if run.higher_is_better else "lower is better"
    _echo(f"{done}, {failed} failed{maps} ({run.model_name}; {direction})", err=True)


@app.command("fit-diagnosis")
def fit_diagnosis_cmd(
    photos: Annotated[
        list[Path],
        typer.Argument(
            help="Training photos: files, folders (recursive) or CSV lists; not those you measure on."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Model folder to write: the model's files and the head.")
    ],
    model: Annotated[str, typer.Option(help="'default' or the model folder to fit a head for.")] = "default",
    blocks: Annotated[
        str, typer.Option(help="Feature blocks the head reads: quality, content or all.")
    ] = "quality",
    crop: Annotated[int, typer.Option(min=32, help="Side of the rendered crops (px).")] = 224,
    pristine: Annotated[int, typer.Option(min=0, help="Untouched crops per photo (issue 'none').")] = 8,
    max_photos: Annotated[int | None, typer.Option(min=2, help="Use a seeded subset of this many.")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the crops, the distortions and the held-out photos.")
    ] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    save_training: Annotated[
        Path | None, typer.Option(help="Also write the renderings' features here (.safetensors).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace files --out already holds.")] = False,
) -> None:
    """Fit a diagnosis head for a model: every distortion type at every level rendered on crops of
    your photos, the model's features of each, a classifier of the issue and a regression of its
    severity; writes a model folder that `reiqa diagnose --model` takes."""
    from reiqa.diagnose.fit import fit_diagnosis
    from reiqa.runtime import tuned_allocator

    with tuned_allocator():
        result = fit_diagnosis(
            photos,
            out,
            model=model,
            blocks=blocks,
            crop=crop,
            pristine=pristine,
            seed=seed,
            max_photos=max_photos,
            device=device,
            overwrite=overwrite,
            progress=True,
            save_training=save_training,
        )
    _print_fit_diagnosis(result)


def _print_fit_diagnosis(result: FitResult) -> None:
    for cause in result.failures:
        _skipped(cause)
    fit = result.head.fit
    typer.echo(f"fitted on {result.photos} photos ({result.renderings} renderings) in {result.seconds:.0f} s")
    v = fit.validation
    if v:
        typer.echo(
            f"held-out photos ({v['photos']}): accuracy {v['accuracy']:.3f}, balanced accuracy "
            f"{v['balanced_accuracy']:.3f}, severity MAE {v['severity_mae']:.3f} (C {fit.C:g}, "
            f"alpha {fit.severity_alpha:g})"
        )
    typer.echo(f"wrote {result.out}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: a free one, printed).")] = 8000,
    model: Annotated[str, typer.Option(help="'default' or a model folder.")] = "default",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Refuse request bodies over this many MB (2^20 bytes): 413.")
    ] = 50.0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    token_env: Annotated[
        str | None,
        typer.Option(help="Name of an environment variable holding a token every request must bear."),
    ] = None,
    batch_window_ms: Annotated[
        float, typer.Option(min=0, help="How long to wait for other requests to batch with.")
    ] = 10.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Images per encoder batch.")] = 16,
    backend: Backend = "auto",
    max_files: Annotated[int, typer.Option(min=1, help="Most files in one request: 413 beyond.")] = 256,
    max_concurrent: Annotated[
        int, typer.Option(min=1, help="Most scoring requests answered at once: 503 + Retry-After beyond.")
    ] = 32,
    request_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a scoring request may take in all: 503 past it.")
    ] = 120.0,
    read_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a request body may stall between two chunks: 408.")
    ] = 15.0,
    header_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a connection has to send a request's headers: 408.")
    ] = 10.0,
    shutdown_timeout: Annotated[
        float, typer.Option(min=1, help="On SIGTERM, seconds in-flight requests get to finish.")
    ] = 30.0,
    inflight_megapixels: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Most decoded megapixels held by all requests at once (about 20 bytes each); "
            "requests beyond it wait.",
        ),
    ] = 64.0,
    request_megapixels: Annotated[
        float,
        typer.Option(min=0.01, help="Most megapixels one request may be charged: 413 beyond."),
    ] = 64.0,
    log_format: Annotated[
        str, typer.Option(help="plain, or json (one object per line, for log collectors).")
    ] = "plain",
) -> None:
    """Serve the model over HTTP: POST /score (multipart, parts named 'file'), POST /diagnose
    (with a diagnosis head), GET /model, /livez, /readyz, /metrics, /openapi.json, /docs, and a
    page at / that sorts dropped photos by quality. SIGTERM stops it gracefully."""
    from reiqa.service.server import serve as run_service

    run_service(
        host=host,
        port=port,
        model=model,
        device=device,
        backend=backend,
        token_env=token_env,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=max_pixels,
        batch_window_s=batch_window_ms / 1000,
        max_batch_images=max_batch,
        max_files=max_files,
        max_concurrent=max_concurrent,
        request_timeout_s=request_timeout,
        read_timeout_s=read_timeout,
        header_timeout_s=header_timeout,
        shutdown_timeout_s=shutdown_timeout,
        inflight_pixels=round(inflight_megapixels * 1e6),
        request_pixels=round(request_megapixels * 1e6),
        log_format=log_format,
    )


@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the graphs into.")],
    model: Annotated[str, typer.Argument(help="'default' or a model folder.")] = "default",
    fmt: Annotated[str, typer.Option("--format", help="onnx (the only format so far).")] = "onnx",
    overwrite: Annotated[bool, typer.Option(help="Replace existing graphs.")] = False,
) -> None:
    """Export a model's encoders as ONNX graphs (dynamic batch and image size; both scales use the
    same graph): quality.onnx, content.onnx and onnx.json (inputs, normalisation, weights id)."""
    if fmt != "onnx":
        raise typer.BadParameter(f"unknown format {fmt!r}; the only one is 'onnx'", param_hint="--format")
    from reiqa.inference import load
    from reiqa.inference.onnx import export_onnx
    from reiqa.outputs import refuse_to_replace

    refuse_to_replace(out, overwrite=overwrite, files=("quality.onnx", "content.onnx", "onnx.json"))
    net = load(None if model == "default" else model)
    for role, path in export_onnx(net.features, out).items():
        _echo(f"wrote {path} ({role} encoder)")


@app.command("quantize")
def quantize_cmd(
    photos: Annotated[
        list[str],
        typer.Argument(
            help="Unlabelled photos like the ones you score (files, folders, globs): a few hundred."
        ),
    ],
    model: Annotated[str, typer.Option(help="'default' or a model folder.")] = "default",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the int8 encoders (default: the cache, where "
            "--backend openvino-int8 reads them).",
        ),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Search folders recursively.")] = False,
    points: Annotated[
        float, typer.Option(min=0.0, help="Hold-out scores may move at most this much...")
    ] = 1.0,
    share: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="...for at least this share of them.")
    ] = 0.99,
    holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Share of the photos held out.")] = 0.2,
    max_photos: Annotated[
        int, typer.Option(min=30, help="Use at most this many photos (seeded draw).")
    ] = 300,
    max_reverts: Annotated[
        int, typer.Option(min=0, help="At most this many layers per encoder go back to float32.")
    ] = 40,
    seed: Annotated[int, typer.Option(help="The draw and the calibration / hold-out split.")] = 0,
) -> None:
    """Make int8 encoders for OpenVINO (NNCF post-training quantization) calibrated on your photos,
    with accuracy control: layers whose int8 arithmetic moves held-out scores go back to float32.
    `reiqa score --backend openvino-int8` uses them; `--backend auto` too when they met the bar."""
    from reiqa.inference import load
    from reiqa.inference.quantize import AccuracyBar, int8_dir, quantize
    from reiqa.inputs import expand_inputs

    net = load(None if model == "default" else model)
    report = quantize(
        net,
        expand_inputs(photos, recursive=recursive),
        out,
        bar=AccuracyBar(points=points, share=share),
        holdout=holdout,
        max_photos=max_photos,
        max_reverts=max_reverts,
        seed=seed,
        progress=True,
        on_skip=_skipped,
    )
    _print_quantized(report, out if out is not None else int8_dir(net.features))


def _print_quantized(report: QuantizationReport, where: Path) -> None:
    """What ``reiqa quantize`` made, how close to float32 it scores, and whether auto will use it."""
    h, points = report.holdout, report.bar["points"]
    for role, d in report.encoders.items():
        _echo(f"{role}: {d['int8_convolutions']} of {d['convolutions']} convolutions in int8", err=True)
    _echo(
        f"hold-out ({h['photos']} photos): {h['share_within_bar']:.1%} of scores within {points} of float32, "
        f"largest difference {h['max_abs_diff']:.2f}, 99th percentile {h['p99_abs_diff']:.2f}",
        err=True,
    )
    verdict = (
        "meets the bar: --backend auto will use it"
        if report.passed
        else "misses the bar: only --backend openvino-int8 uses it"
    )
    _echo(f"wrote {where} ({verdict})")


@app.command("bundle")
def make_bundle(
    regressor: Annotated[Path, typer.Option(help="Folder written by `reiqa fit`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    quality: Annotated[Path | None, typer.Option(help="encoder.json, or an official .pth file.")] = None,
    content: Annotated[Path | None, typer.Option(help="encoder.json, or an official .pth file.")] = None,
    name: Annotated[str, typer.Option(help="A name for the model card.")] = "reiqa model",
    half: Annotated[bool, typer.Option(help="Store the encoder weights as float16.")] = True,
    max_side: Annotated[
        int | None, typer.Option(help="As given to `reiqa features` for the regressor's features.")
    ] = None,
    min_side: Annotated[
        int | None, typer.Option(help="As given to `reiqa features` for the regressor's features.")
    ] = None,
    compat: Annotated[bool, typer.Option(help="As given to `reiqa features`.")] = False,
    pooling: Annotated[str, typer.Option(help="As given to `reiqa features`.")] = "gap",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Put encoders (ours or the official release) and a fitted regressor into one model folder
    that `reiqa score --model` and `reiqa.load(path)` read."""
    from reiqa.features import FeatureOptions
    from reiqa.inference import make_bundle as write_bundle
    from reiqa.outputs import refuse_to_replace

    refuse_to_replace(
        out,
        overwrite=overwrite,
        files=(
            "model.json",
            "regressor.json",
            "regressor.safetensors",
            "quality.safetensors",
            "content.safetensors",
        ),
    )

    options = FeatureOptions(max_side=max_side, min_side=min_side, compat=compat, pooling=pooling)
    write_bundle(quality, content, regressor, out, name=name, half=half, options=options)
    typer.echo(f"wrote {out}")


@app.command("export-encoder")
def export_encoder_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A reiqa pretrain --out folder.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output stem: writes STEM.safetensors + STEM.json.")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Export the query encoder of a run's latest checkpoint (also before the schedule ends)."""
    from reiqa.models.checkpoints import export_encoder

    _refuse_stem(out, overwrite)

    typer.echo(f"wrote {export_encoder(run_dir / 'checkpoint', out)}")


@app.command("import-encoder")
def import_encoder_cmd(
    source: Annotated[Path, typer.Argument(help="A weights file of another project.")],
    kind: Annotated[
        str, typer.Option("--from", help="efficientnet-lite0|1|2, official-quality or official-content.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output stem: writes STEM.safetensors + STEM.json.")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Convert a foreign backbone file into a reiqa encoder (what features/bundle read)."""
    from reiqa.models.importers import IMPORTABLE, import_encoder

    _refuse_stem(out, overwrite)

    if kind not in IMPORTABLE:
        raise typer.BadParameter(f"--from must be one of {', '.join(IMPORTABLE)}, got {kind!r}")
    if not source.is_file():
        raise typer.BadParameter(f"{source}: no such file")
    typer.echo(f"wrote {import_encoder(source, kind, out)}")


@app.command("training-curve")
def training_curve(
    run_dir: Annotated[Path, typer.Argument(help="A reiqa pretrain --out folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")] = Path(
        "training-curve.png"
    ),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Plot loss, accuracy and learning rate of a pre-training run."""
    from reiqa.outputs import refuse_to_replace
    from reiqa.train.report import plot_training_curve

    refuse_to_replace(output, overwrite=overwrite)

    typer.echo(f"wrote {plot_training_curve(run_dir, output)}")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from reiqa import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Console entry point. Errors a user can cause (``ReiqaError``, and ``OSError``: a missing
    file, a folder that cannot be written, a full disk) become one line ``error: ...`` and exit
    status 1; set ``REIQA_DEBUG=1`` to see the traceback instead."""
    warnings.formatwarning = _format_warning
    _show_log_messages()
    try:
        app()
    except (ReiqaError, OSError) as exc:
        if os.environ.get("REIQA_DEBUG"):
            raise
        _echo(f"error: {printable(_describe(exc))}", err=True)
        sys.exit(1)


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a message comes (tests and embedding programs
    replace it), not as it was when the handler was made."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def _show_log_messages() -> None:
    """reiqa's log messages (the service's address, a first export of the graphs) on stderr as
    plain lines, once each: the handler is installed once, and the messages do not also go to
    the root logger's handlers."""
    logger = logging.getLogger("reiqa")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


_quick_exit_allowed = False


def _allow_quick_exit() -> None:
    """Called by a command once everything it writes is closed: ``entry`` may then end the process
    without the interpreter's teardown."""
    global _quick_exit_allowed
    _quick_exit_allowed = True


def entry() -> None:
    """The ``reiqa`` console script: :func:`main`, then, after a command that allowed it
    (``reiqa score``), a quick exit.

    With torch imported, the interpreter's teardown and the C++ libraries' destructors take about
    0.45 s on a 2-core CPU (``python -c "import torch"`` spends it too), a fifth of scoring one
    photo. The quick exit keeps what matters of it, in the interpreter's order: thread pools are
    stopped and other non-daemon threads joined, the ``atexit`` handlers run (logging,
    multiprocessing pools, Ray), the standard streams are flushed; then ``os._exit`` with the
    status ``sys.exit`` would give. ``main`` itself, which
    the tests call in-process, never exits this way."""
    try:
        main()
    except SystemExit as exc:
        if not _quick_exit_allowed:
            raise
        code = exc.code
    else:
        if not _quick_exit_allowed:
            return
        code = None
    _quick_exit(code)


def _quick_exit(code: object) -> None:
    import atexit
    import contextlib
    import threading

    if code is None or isinstance(code, int):
        status = code or 0
    else:  # sys.exit("message") prints the message and exits with 1
        print(code, file=sys.stderr)
        status = 1
    # What the interpreter's finalisation does first, in its order: stop thread pools (threading's
    # own exit hooks), join the other non-daemon threads, run the atexit handlers.
    if hasattr(threading, "_shutdown"):
        threading._shutdown()
    else:  # not CPython
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: no reader left
            stream.flush()
    os._exit(status)


def _refuse_stem(stem: Path, overwrite: bool) -> None:
    """An encoder is two files, STEM.safetensors and STEM.json: neither is replaced unasked."""
    from reiqa.outputs import refuse_to_replace

    for path in (stem.with_suffix(".safetensors"), stem.with_suffix(".json")):
        refuse_to_replace(path, overwrite=overwrite)


def _format_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    """Warnings on the command line as one line each (reiqa's name the file they are about)."""
    return f"warning: {printable(message)}\n"


def _describe(exc: BaseException) -> str:
    """The message of an error, with the file an OSError is about when it has one."""
    if isinstance(exc, OSError) and not isinstance(exc, ReiqaError) and exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__
