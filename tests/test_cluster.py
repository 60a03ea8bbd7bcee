"""Scoring on Ray (a local instance with 2 CPUs, 2 actors): the same scores as the single-process
CLI, every file exactly once, also when an actor is killed mid-run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reiqa.io import save_image
from tests.conftest import save_tiny_bundle, textured_images

ray = pytest.importorskip("ray", reason="scoring on Ray needs Ray Data: pip install 'reiqa[ray]'")
pytest.importorskip("ray.data", reason="scoring on Ray needs Ray Data: pip install 'reiqa[ray]'")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 photos of two sizes and two broken files."""
    root = tmp_path_factory.mktemp("photos")
    for i, image in enumerate(textured_images(24, 48, 64, seed=21)):
        save_image(image if i % 3 else image[:, :40, :56], root / f"p{i:02d}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (root / "empty.png").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny")


def _score_command(folder: Path, model: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reiqa",
        "score",
        str(folder),
        "--model",
        str(model),
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture(scope="module")
def cli_scores(folder: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("cli") / "scores.csv"
    done = subprocess.run(
        _score_command(folder, tiny_model, "-o", str(out)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr  # the two broken files
    return _read(out)


def _read(path: Path) -> dict[str, dict]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = [Path(r["path"]).name for r in rows]
    assert len(names) == len(set(names)), "a file was written twice"
    return {Path(r["path"]).name: r for r in rows}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


def _scoring_actors() -> set[int]:
    """PIDs of the processes of Ray Data's actors running BatchScorer (Ray names them)."""
    import psutil

    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if "BatchScorer" in " ".join(proc.info["cmdline"] or []):
            found.add(proc.info["pid"])
    return found


def test_killed_actor_is_restarted_and_nothing_is_lost_or_doubled(
    local_ray, folder, tiny_model, cli_scores
) -> None:
    from reiqa.cluster import score_dataset

    paths = sorted(str(p) for p in folder.iterdir())
    dataset = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=13)
    scored = score_dataset(dataset, model=str(tiny_model), device="cpu", num_actors=2, batch_size=2)
    rows, killed, before = [], None, set()
    for row in scored.iter_rows():
        rows.append(row)
        if killed is None:  # one batch is out: kill an actor while the others are in flight
            before = _scoring_actors()
            assert before, "no scoring actor found"
            killed = min(before)
            os.kill(killed, signal.SIGKILL)
    after = _scoring_actors()
    names = [Path(r["path"]).name for r in rows]
    assert sorted(names) == sorted(Path(p).name for p in paths)  # every file exactly once
    assert killed not in after and after - before, "the killed actor was not restarted"
    for row in rows:
        expected = cli_scores[Path(row["path"]).name]
        if expected["score"]:
            assert row["error"] is None
            assert float(row["score"]) == pytest.approx(float(expected["score"]), abs=1e-3)
        else:
            assert row["score"] != row["score"]  # NaN
            assert row["error"] == expected["error"]
    print(f"ray: {len(rows)} rows from 2 actors; killed pid {killed}, restarted as {sorted(after - before)}")


def test_cli_score_with_ray_equals_the_single_process_cli(
    local_ray, folder, tiny_model, cli_scores, tmp_path
) -> None:
    out = tmp_path / "ray.csv"
    done = subprocess.run(
        _score_command(folder, tiny_model, "--ray", "local", "--ray-actors", "2", "-o", str(out)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    got = _read(out)
    assert got.keys() == cli_scores.keys()
    for name, row in got.items():
        if cli_scores[name]["score"]:
            assert float(row["score"]) == pytest.approx(float(cli_scores[name]["score"]), abs=1e-3)
        else:
            assert row["score"] == "" and row["error"] == cli_scores[name]["error"]


def test_ray_scores_with_the_drivers_options_and_records_them(
    local_ray, folder, tiny_model, tmp_path
) -> None:
    """``--max-side`` reaches the actors: ``--ray`` gives the single-process scores at that size,
    and both outputs' provenance records the size they were really scored at."""
    import json

    import reiqa

    outputs = {"ray": tmp_path / "ray.csv", "plain": tmp_path / "plain.csv"}
    for kind, out in outputs.items():
        extra = ["--ray", "local", "--ray-actors", "2"] if kind == "ray" else []
        done = subprocess.run(
            _score_command(folder, tiny_model, "--max-side", "32", "-o", str(out), *extra),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 3, done.stderr  # the two broken files
    ray_rows, plain_rows = _read(outputs["ray"]), _read(outputs["plain"])
    model = reiqa.load(tiny_model).with_options(max_side=32)
    uncapped = reiqa.load(tiny_model)
    moved = 0
    for name, row in plain_rows.items():
        if not row["score"]:
            assert ray_rows[name]["error"] == row["error"]
            continue
        expected = model.score(folder / name)
        assert float(row["score"]) == pytest.approx(expected, abs=1e-3)
        assert float(ray_rows[name]["score"]) == pytest.approx(expected, abs=1e-3)
        moved += abs(uncapped.score(folder / name) - expected) > 1e-3
    assert moved > 0, "the cap changed no score: the test would not see the options lost"
    for out in outputs.values():
        record = json.loads(out.with_name(f".{out.name}.reiqa.json").read_text())
        assert record["options"]["max_side"] == 32 and record["model_id"] == model.model_id


def test_an_actor_refuses_a_model_other_than_the_drivers(tiny_model) -> None:
    import reiqa
    from reiqa.cluster import BatchScorer
    from reiqa.errors import ModelError

    capped = reiqa.load(tiny_model).with_options(max_side=32)
    scorer = BatchScorer(str(tiny_model), device="cpu", options={"max_side": 32}, model_id=capped.model_id)
    assert scorer.model.model_id == capped.model_id and scorer.model.max_side == 32
    with pytest.raises(ModelError, match="the driver's"):
        BatchScorer(str(tiny_model), device="cpu", model_id=capped.model_id)  # the card's size, not 32


def test_an_actor_reads_rows_with_bytes_from_memory_and_the_others_from_their_paths(
    folder, tiny_model
) -> None:
    import numpy as np

    import reiqa
    from reiqa.cluster import BatchScorer

    scorer = BatchScorer(str(tiny_model), device="cpu")
    photo = folder / "p01.png"
    batch = {
        "path": np.array(["upload.png", str(photo), "junk.jpg"], dtype=object),
        "bytes": np.array([photo.read_bytes(), None, b"junk"], dtype=object),
    }
    out = scorer(batch)
    expected = reiqa.load(tiny_model).score(photo)
    assert out["score"][:2] == pytest.approx([expected, expected], abs=1e-4)
    assert np.isnan(out["score"][2]) and out["error"][2].startswith("junk.jpg: ")
    assert list(out["path"]) == ["upload.png", str(photo), "junk.jpg"]
