"""The ``reiqa`` command line. Each command parses its arguments, calls one library function and
formats the result; a ``ReiqaError`` becomes ``error: <message>`` and exit status 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import torch
import typer

from reiqa.errors import ReiqaError

app = typer.Typer(
    name="reiqa",
    help="No-reference image quality assessment with Re-IQA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise typer.BadParameter(f"unknown device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("CUDA was asked for but torch sees no GPU; use --device cpu")
    return device


def _print_catalogue() -> None:
    from reiqa.distortions import CATALOG

    typer.echo(f"{'id':>2}  {'name':<21} {'family':<11} {'parameter':<30} levels L0..L4")
    for spec in CATALOG.values():
        levels = ", ".join(f"{v:g}" for v in spec.levels)
        typer.echo(f"{spec.id:>2}  {spec.name:<21} {spec.family:<11} {spec.parameter:<30} {levels}")


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
) -> None:
    """Apply one synthetic distortion to an image, or render every type and level as a sheet."""
    if list_:
        _print_catalogue()
        return
    if image is None or output is None:
        raise typer.BadParameter("give an IMAGE and --output (or use --list)")
    if sheet == (type_ is not None):
        raise typer.BadParameter("give exactly one of --type NAME|ID or --sheet")
    from reiqa import distortions, io
    from reiqa.sheet import distortion_sheet

    dev = _device(device)
    x = io.load_image(image).to(dev)
    generator = torch.Generator(dev).manual_seed(seed)
    if sheet:
        picture = distortion_sheet(x, tile=tile, compat=compat, generator=generator)
        tmp = output.with_name(f".{output.name}.tmp{output.suffix}")
        output.parent.mkdir(parents=True, exist_ok=True)
        picture.save(tmp)
        tmp.replace(output)
    else:
        spec = distortions.get(type_)
        y = distortions.apply(x.unsqueeze(0), spec.id, level, generator=generator, compat=compat)[0]
        io.save_image(y, output)
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


@app.command("training-curve")
def training_curve(
    run_dir: Annotated[Path, typer.Argument(help="A reiqa pretrain --out folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")] = Path(
        "training-curve.png"
    ),
) -> None:
    """Plot loss, accuracy and learning rate of a pre-training run."""
    from reiqa.train.report import plot_training_curve

    typer.echo(f"wrote {plot_training_curve(run_dir, output)}")


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from reiqa import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Console entry point."""
    try:
        app()
    except ReiqaError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
