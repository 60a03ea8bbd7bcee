"""``reiqa score`` as an unlucky or hostile user runs it: resumed outputs of other models, two
writers, failed files retried, paths named two ways, bad arguments beside good ones, and errors
that are one line, not a traceback. Runs ``reiqa.cli.main`` in-process, and the console script
(``reiqa.cli.entry``, which calls it) in a subprocess."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reiqa.outputs import ScoreOutput
from tests.conftest import run_cli, save_tiny_bundle, textured_images


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    return save_tiny_bundle(root / "a", 0, "test model 0"), save_tiny_bundle(root / "b", 1, "test model 1")


def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (48, 64)) -> Path:
    pixels = textured_images(1, *size, seed=seed)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    return [_photo(folder / f"{i}.png", seed=i) for i in range(3)]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


def _score(args, models, capsys, monkeypatch, model: int = 0) -> tuple[int, str, str]:
    return run_cli(["score", *args, "--model", models[model], "--device", "cpu"], capsys, monkeypatch)


def test_resuming_with_other_options_or_another_model_is_refused(
    models, photos, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "scores.csv"
    assert _score([*photos[:2], "-o", out], models, capsys, monkeypatch)[0] == 0
    before = out.read_bytes()
    code, _, err = _score([*photos, "-o", out, "--max-side", "32"], models, capsys, monkeypatch)
    assert code == 1 and err.startswith("error: ") and "max_side=32" in err and "--overwrite" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = _score([*photos, "-o", out], models, capsys, monkeypatch, model=1)
    assert code == 1 and "test model 0" in err and "test model 1" in err
    assert out.read_bytes() == before
    code, _, err = _score(
        [*photos, "-o", out, "--max-side", "32", "--overwrite"], models, capsys, monkeypatch
    )
    assert code == 0 and "3 scored, 0 failed, 0 already" in err and len(_rows(out)) == 3


def test_a_second_writer_gets_a_one_line_error(models, photos, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "scores.csv"
    assert _score([*photos[:1], "-o", out], models, capsys, monkeypatch)[0] == 0
    from reiqa.inference import load
    from reiqa.jobs import scoring_provenance

    with ScoreOutput(out, scoring_provenance(load(models[0]))):  # another run in flight
        code, _, err = _score([*photos, "-o", out], models, capsys, monkeypatch)
    assert code == 1 and "another reiqa run is writing this output" in err
    assert _score([*photos, "-o", out], models, capsys, monkeypatch)[0] == 0
    assert sorted(r["path"] for r in _rows(out)) == sorted(map(str, photos))  # one header, rows once


def test_failed_files_are_retried_and_the_exit_status_follows_the_final_output(
    models, photos, tmp_path, capsys, monkeypatch
) -> None:
    out = tmp_path / "scores.jsonl"
    broken = photos[0].with_name("late.png")
    broken.write_bytes(photos[0].read_bytes()[:40])
    code, _, err = _score([*photos, broken, "-o", out], models, capsys, monkeypatch)
    assert code == 3 and "late.png" in err
    _photo(broken, seed=9)  # the user fixes the file
    code, _, err = _score([*photos, broken, "-o", out], models, capsys, monkeypatch)
    assert code == 0 and "1 failed file(s) retried" in err and "1 scored, 0 failed, 3 already" in err
    import json

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(r["error"] is None for r in rows)


def test_the_same_files_named_another_way_are_not_scored_again(models, photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "scores.csv"
    monkeypatch.chdir(photos[0].parent)
    assert _score([photos[0].name, photos[1].name, "-o", out], models, capsys, monkeypatch)[0] == 0
    code, _, err = _score([*photos[:2], "-o", out], models, capsys, monkeypatch)
    assert code == 0 and "0 scored, 0 failed, 2 already" in err and len(_rows(out)) == 2


def test_bad_arguments_are_reported_and_the_rest_scored(
    models, photos, tmp_path, capsys, monkeypatch
) -> None:
    missing = tmp_path / "nowhere.jpg"
    code, out, err = _score(
        [photos[0], missing, str(tmp_path / "*.webp"), photos[1]], models, capsys, monkeypatch
    )
    assert code == 3 and "Traceback" not in err
    assert f"skipped: {missing}: no such file or directory" in err
    assert "*.webp: no image files match this pattern" in err
    assert "2 scored, 0 failed" in err and photos[1].name in out


@pytest.mark.parametrize(
    ("output", "message"),
    [("scores.txt", "must end in .csv, .jsonl or .json"), ("folder.csv", "is a folder")],
)
def test_a_bad_output_is_one_line(models, photos, tmp_path, capsys, monkeypatch, output, message) -> None:
    (tmp_path / "folder.csv").mkdir()
    code, _, err = _score([*photos, "-o", tmp_path / output], models, capsys, monkeypatch)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_missing_model_and_unavailable_device_are_one_line(
    models, photos, tmp_path, capsys, monkeypatch
) -> None:
    code, _, err = run_cli(["score", *photos, "--model", tmp_path / "no-model"], capsys, monkeypatch)
    assert code == 1 and "no-model" in err and len(err.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        code, _, err = run_cli(
            ["score", *photos, "--model", models[0], "--device", "cuda"], capsys, monkeypatch
        )
        assert code == 1 and "CUDA" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux only")
def test_a_file_name_that_is_not_utf8_is_scored_into_csv(models, tmp_path, capsys, monkeypatch) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    odd = _photo(Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.png")))
    _photo(folder / "plain.png", seed=1)
    out = tmp_path / "scores.csv"
    code, _, err = _score([folder, "-o", out], models, capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err
    assert {r["path"] for r in _rows(out)} == {str(odd), str(folder / "plain.png")}
    code, stdout, err = _score([folder], models, capsys, monkeypatch)  # printed, not crashed
    assert code == 0 and "caf\\xe9.png" in stdout
    code, _, err = _score([folder, "-o", out], models, capsys, monkeypatch)
    assert code == 0 and "0 scored, 0 failed, 2 already" in err


def test_writers_never_replace_a_file_they_did_not_write(
    models, photos, tmp_path, capsys, monkeypatch
) -> None:
    precious = tmp_path / "precious.csv"
    precious.write_text("mine\n")
    encoder = models[0]  # a model folder gives the encoders
    code, _, err = run_cli(["features", *photos, "--model", encoder, "--out", precious], capsys, monkeypatch)
    assert code == 1 and "ending in .safetensors" in err and precious.read_text() == "mine\n"
    feats = tmp_path / "feats.safetensors"
    feats.write_bytes(b"not yours")
    code, _, err = run_cli(["features", *photos, "--model", encoder, "--out", feats], capsys, monkeypatch)
    assert code == 1 and "exists; pass --overwrite" in err and feats.read_bytes() == b"not yours"
    args = ["features", *photos, "--model", encoder, "--out", feats, "--device", "cpu", "--overwrite"]
    assert run_cli(args, capsys, monkeypatch)[0] == 0 and feats.read_bytes() != b"not yours"

    scores = tmp_path / "mos.csv"
    scores.write_text("image,mos\n" + "".join(f"{p.name},{i * 10 + 5}\n" for i, p in enumerate(photos)))
    regressor = models[0]  # already holds regressor.json
    fit = ["fit", "--features", feats, "--scores", scores, "--images", photos[0].parent, "--out", regressor]
    before = (regressor / "regressor.json").read_bytes()
    code, _, err = run_cli(fit, capsys, monkeypatch)
    assert code == 1 and "already holds regressor.json" in err and "--overwrite" in err
    assert (regressor / "regressor.json").read_bytes() == before
    bundle = ["bundle", "--regressor", models[1], "--out", models[0], "--quality", tmp_path / "q.json"]
    code, _, err = run_cli(bundle, capsys, monkeypatch)
    assert code == 1 and "already holds model.json" in err


def test_evaluate_scores_take_root_for_relative_names(models, photos, tmp_path, capsys, monkeypatch) -> None:
    labels = tmp_path / "labels" / "mos.csv"  # names relative to the photo folder, not the CSV's
    labels.parent.mkdir()
    labels.write_text("image,mos\n" + "".join(f"{p.name},{i}\n" for i, p in enumerate(photos)))
    code, _, err = run_cli(
        [
            "evaluate",
            "--features",
            tmp_path / "none.safetensors",
            "--scores",
            labels,
            "--out",
            tmp_path / "r",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 1 and "--root" in err and "root=" not in err.replace("root= in Python", "")
    from reiqa.datasets.csv_table import load_csv

    table = load_csv(labels, root=photos[0].parent)
    assert [p.name for p in table.paths] == [p.name for p in photos]
    code, _, err = run_cli(
        [
            "evaluate",
            "--features",
            tmp_path / "none.safetensors",
            "--scores",
            labels,
            "--root",
            photos[0].parent,
            "--out",
            tmp_path / "r",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 1 and "none.safetensors" in err and "images listed" not in err  # the labels were read


def test_a_non_finite_score_is_a_failure_not_a_score(models, photos, tmp_path, capsys, monkeypatch) -> None:

    from reiqa.inference import load

    model = load(models[0])
    model.regressor.intercept_ = float("nan")  # what a corrupted regressor in memory would give
    records = list(model.score_files(photos[:2]))
    assert [r.score for r in records] == [None, None]
    assert all(
        "non-finite score" in r.error and str(p) in r.error for r, p in zip(records, photos[:2], strict=True)
    )
    assert np.isnan(model.score(photos[:2])).all()


def test_every_other_writer_needs_overwrite_too(models, photos, tmp_path, capsys, monkeypatch) -> None:
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    code, _, err = run_cli(["distort", photos[0], "-t", "1", "-o", taken], capsys, monkeypatch)
    assert code == 1 and "taken.png: exists; pass --overwrite" in err and taken.read_bytes() == b"mine"
    assert run_cli(["distort", photos[0], "-t", "1", "-o", taken, "--overwrite"], capsys, monkeypatch)[0] == 0
    (tmp_path / "enc.json").write_text("{}")
    code, _, err = run_cli(
        ["import-encoder", photos[0], "--from", "efficientnet-lite0", "-o", tmp_path / "enc"],
        capsys,
        monkeypatch,
    )
    assert code == 1 and "enc.json: exists" in err
    code, _, err = run_cli(["training-curve", tmp_path, "-o", taken], capsys, monkeypatch)
    assert code == 1 and "taken.png: exists" in err
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("mine")
    labels = tmp_path / "mos.csv"
    labels.write_text("image,mos\n" + "".join(f"{p},{i}\n" for i, p in enumerate(photos)))
    code, _, err = run_cli(
        ["evaluate", "--features", taken, "--scores", labels, "--out", report], capsys, monkeypatch
    )
    assert code == 1 and "already holds report.md" in err and (report / "report.md").read_text() == "mine"


_ENTRY = """
import atexit, sys, threading, time
from pathlib import Path
from reiqa import cli

marker = Path(sys.argv[1])
def late_writer():
    time.sleep(0.5)  # still running when the command returns: the exit must wait for it
    marker.with_suffix(".thread").write_text("done")
threading.Thread(target=late_writer).start()
# a pool left open, as libraries leave them: its worker threads wait until threading's exit hook
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(max_workers=1)  # still referenced at exit
pool.submit(int, "1").result()
atexit.register(lambda: marker.write_text("atexit ran"))
sys.argv = ["reiqa", *sys.argv[2:]]
cli.entry()
"""


@pytest.mark.parametrize("to_file", [True, False])
def test_the_console_script_exits_quickly_but_keeps_what_matters(models, photos, tmp_path, to_file) -> None:
    """``reiqa score`` through the console script skips the interpreter's teardown, yet its exit
    status, output file, printed lines (stdout to a pipe is block-buffered), atexit handlers and
    other threads are those of a normal exit."""
    import subprocess

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    out, marker = tmp_path / "scores.csv", tmp_path / "marker.txt"
    args = ["score", *map(str, [*photos, broken]), "--model", str(models[0]), "--device", "cpu"]
    args += ["-o", str(out)] if to_file else []
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY, str(marker), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert f"skipped: {broken}" in done.stderr
    assert f"{len(photos)} scored, 1 failed" in done.stdout + done.stderr
    if to_file:
        rows = _rows(out)
        assert [r["path"] for r in rows] == [str(p) for p in [*photos, broken]]
        assert all(r["score"] for r in rows[:-1]) and rows[-1]["error"] and not rows[-1]["score"]
    else:
        assert [line.split()[0] for line in done.stdout.splitlines()[: len(photos)]] == list(map(str, photos))
    assert marker.read_text() == "atexit ran"
    assert marker.with_suffix(".thread").read_text() == "done"


def test_version_through_the_console_script(tmp_path) -> None:
    """``--version`` (a command that exits the usual way) prints the version and exits with 0."""
    import subprocess

    from reiqa import __version__

    marker = tmp_path / "marker.txt"
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY, str(marker), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == __version__
    assert marker.read_text() == "atexit ran"


def test_max_side_gives_the_apis_scores_and_is_recorded(tmp_path, capsys, monkeypatch) -> None:
    """``reiqa score --max-side 96`` scores what the Python API scores with that cap, on every
    kind of input, and the output's provenance records 96, not the card's 1024."""
    import json

    import reiqa

    folder = tmp_path / "photos"
    folder.mkdir()
    paths = [_photo(folder / f"{i}.png", seed=i, size=(120, 160)) for i in range(2)]
    out = tmp_path / "scores.csv"
    code, _, err = run_cli(["score", folder, "--max-side", "96", "-o", out], capsys, monkeypatch)
    assert code == 0, err
    written = {Path(r["path"]).name: float(r["score"]) for r in _rows(out)}
    model = reiqa.load(device="auto").with_options(max_side=96)
    full = reiqa.load(device="auto")
    for path in paths:
        expected = written[path.name]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
            assert model.score(image) == pytest.approx(expected, abs=1e-3)
        assert model.score(path) == pytest.approx(expected, abs=1e-3)
        assert model.score(pixels) == pytest.approx(expected, abs=1e-3)
        assert model.score(pixels[None])[0] == pytest.approx(expected, abs=1e-3)
        assert abs(full.score(path) - expected) > 1e-3  # the cap is really applied
    assert model.score(paths) == pytest.approx([written[p.name] for p in paths], abs=1e-3)
    record = json.loads(out.with_name(f".{out.name}.reiqa.json").read_text())
    assert record["options"]["max_side"] == 96 and record["model_id"] == model.model_id
