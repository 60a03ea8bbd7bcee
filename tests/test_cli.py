"""The command line: parsing, exit codes, and that each command does its job."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from reiqa.cli import app
from reiqa.distortions import CATALOG
from reiqa.io import load_image, save_image
from tests.conftest import textured_images

runner = CliRunner()


@pytest.fixture
def photo(tmp_path):
    return save_image(textured_images(1, 64, 80)[0], tmp_path / "photo.png")


def test_list_prints_every_type() -> None:
    result = runner.invoke(app, ["distort", "--list"])
    assert result.exit_code == 0
    for spec in CATALOG.values():
        assert spec.name in result.output


def test_distort_writes_the_distorted_image(photo, tmp_path) -> None:
    out = tmp_path / "sub" / "blurred.png"
    result = runner.invoke(
        app, ["distort", str(photo), "--type", "lens_blur", "--level", "4", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    original, blurred = load_image(photo), load_image(out)
    assert blurred.shape == original.shape
    # a lens blur removes high frequencies: neighbouring pixels differ less
    assert blurred.diff(dim=-1).abs().mean() < 0.5 * original.diff(dim=-1).abs().mean()


def test_distort_by_id_is_seeded(photo, tmp_path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        assert (
            runner.invoke(
                app, ["distort", str(photo), "-t", "8", "-l", "3", "--seed", "5", "-o", str(out)]
            ).exit_code
            == 0
        )
    assert torch.equal(load_image(a), load_image(b))


def test_sheet_has_a_row_per_type_and_a_column_per_level(photo, tmp_path) -> None:
    out = tmp_path / "sheet.png"
    result = runner.invoke(app, ["distort", str(photo), "--sheet", "--tile", "32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    width, height = Image.open(out).size
    assert height >= 26 * 32 and width >= 6 * 32


@pytest.mark.parametrize(
    "args",
    [
        ["distort", "x.png", "-o", "y.png"],  # neither --type nor --sheet
        ["distort", "x.png", "--sheet", "-t", "1", "-o", "y.png"],  # both
        ["distort", "x.png", "-t", "1", "-l", "7", "-o", "y.png"],  # level out of range
    ],
)
def test_usage_errors_exit_2(args) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_a_bad_image_is_reported_with_its_path_and_exit_1(tmp_path) -> None:
    bad = tmp_path / "not an image.jpg"
    bad.write_text("hello")
    proc = subprocess.run(
        [sys.executable, "-m", "reiqa", "distort", str(bad), "-t", "1", "-o", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pretrain_runs_from_the_command_line_and_plots_its_curve(tmp_path) -> None:
    images = textured_images(4, 64, 64)
    for i in range(4):
        save_image(images[i], tmp_path / "imgs" / f"{i}.png")
    overrides = [
        "data.quality.patch_size=32",
        "data.quality.n_aug=1",
        "data.quality.n_scale=1",
        "data.quality.margin=0",
        "data.workers=0",
        "model.channels_last=false",
        "moco.queue_size=8",
        "batch_size=2",
        "optim.epochs=1",
        "optim.warmup_epochs=0",
        "log_every=1",
    ]
    args = [
        "pretrain",
        "--preset",
        "cpu-small",
        "--data",
        str(tmp_path / "imgs"),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    for o in overrides:
        args += ["--set", o]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "encoder.safetensors").is_file()
    curve = tmp_path / "curve.png"
    assert runner.invoke(app, ["training-curve", str(tmp_path / "run"), "-o", str(curve)]).exit_code == 0
    assert Image.open(curve).size[0] > 100


def test_pretrain_rejects_a_bad_override(tmp_path) -> None:
    from reiqa.errors import ConfigError

    result = runner.invoke(
        app,
        [
            "pretrain",
            "--preset",
            "cpu-small",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "optim.epochs=0",
        ],
    )
    assert isinstance(result.exception, ConfigError) and "epochs" in str(result.exception)


def test_the_cli_limit_is_the_loaders_limit() -> None:
    from reiqa import cli, io

    assert cli.DEFAULT_MAX_PIXELS == io.DEFAULT_MAX_PIXELS


def test_the_pooling_help_names_every_pooling() -> None:
    import re

    from reiqa import cli
    from reiqa.models.backbones import POOLINGS

    named = set(re.findall(r"\b(gap(?:\+\w+)?) \(", cli.POOLING_HELP))
    assert named == set(POOLINGS)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["score", "--help"],
        ["features", "--help"],
        ["score"],
        ["score", "x.jpg", "--batch-size", "0"],
    ],
)
def test_help_and_argument_errors_never_import_torch(args) -> None:
    code = (
        "import sys\n"
        "from reiqa.cli import main\n"
        f"sys.argv = ['reiqa', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_log_messages_reach_the_stderr_of_each_run_once(capsys) -> None:
    """The CLI's handler writes to sys.stderr as it is now (tests and embedding programs replace
    it), is installed once however often main() runs, and does not pass messages on to the
    root logger (no second copy where a program configured logging)."""
    import logging

    from reiqa.cli import _show_log_messages

    root = logging.getLogger()
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    collector = Collect()
    root.addHandler(collector)
    try:
        for i in range(2):
            _show_log_messages()
            logging.getLogger("reiqa.service").info("listening %d", i)
            assert capsys.readouterr().err == f"listening {i}\n"
    finally:
        root.removeHandler(collector)
    assert seen == []
